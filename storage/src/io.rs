//! The durability points of storage's file I/O: every fsync of a file or a directory goes through
//! here. In production these are `File::sync_data`/`sync_all` plus one relaxed atomic load;
//! writes, renames and deletes go straight to the filesystem and cost nothing extra.
//!
//! That split is what makes [`sim`] possible, a power-loss simulation in the manner of LazyFS:
//! the real filesystem plays the page cache (it holds everything written, as after a process
//! crash), and while a simulation is enabled each fsync records what it made durable — a file's
//! bytes, a directory's entries. [`sim::crash`] then rewrites a tree to what a power loss could
//! leave behind. Anything that skips these functions counts as never fsynced, so a missing fsync
//! shows up as lost data in the simulation, never as a false pass.
//!
//! Thread-safe: the simulation's records sit behind one mutex, taken only while it is enabled.

use std::fs::File;
use std::io;
use std::path::Path;

/// `fdatasync`: the file's data (and the size needed to read it back) is durable.
pub fn sync_data(file: &File) -> io::Result<()> {
    if sim::enabled() && sim::record_file(file)? {
        return Ok(());
    }
    file.sync_data()
}

/// `fsync`: the file's data and all of its metadata are durable.
pub fn sync_all(file: &File) -> io::Result<()> {
    if sim::enabled() && sim::record_file(file)? {
        return Ok(());
    }
    file.sync_all()
}

/// fsyncs the file at `path` (its data); a missing file needs none.
pub fn sync_path(path: &Path) -> io::Result<()> {
    match File::open(path) {
        Ok(f) => sync_data(&f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so the creations, renames and deletions of its entries survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    if sim::enabled() && sim::record_dir(dir)? {
        return Ok(());
    }
    File::open(dir)?.sync_all()
}

/// Power-loss simulation (tests and the `power_loss` example): see the module docs.
///
/// Model: a file's durable bytes are its content at its last fsync (none if never fsynced); a
/// directory's durable entries are its entries at its last fsync (none if never fsynced), each
/// naming an inode (so a renamed file keeps its durable bytes). A crash keeps, per directory,
/// either its durable entries or its current ones (metadata changes since the last directory
/// fsync are all lost or all kept), and per file its durable bytes plus a random prefix of what
/// changed since (a torn tail), or — when the file was truncated or overwritten since — either
/// the old durable bytes or a torn version of the new ones. Only paths under a root registered
/// with [`enable`](sim::enable) are simulated; fsyncs elsewhere are real.
pub mod sim {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::fs::{self, File};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, MutexGuard, PoisonError};

    static ENABLED: AtomicBool = AtomicBool::new(false);
    static STATE: Mutex<State> = Mutex::new(State { roots: Vec::new(), files: BTreeMap::new(), dirs: BTreeMap::new() });

    /// An inode: device, inode number and birth time (inode numbers are reused after deletes).
    type Inode = (u64, u64, i128);

    #[derive(Clone)]
    struct Entry {
        inode: Inode,
        is_dir: bool,
        /// The file's durable bytes when the directory was fsynced (used if the inode is gone).
        bytes: Vec<u8>,
    }

    struct State {
        roots: Vec<PathBuf>,
        /// Durable bytes by inode.
        files: BTreeMap<Inode, Vec<u8>>,
        /// Durable entries by directory inode.
        dirs: BTreeMap<Inode, BTreeMap<OsString, Entry>>,
    }

    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    fn inode(meta: &fs::Metadata) -> Inode {
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        (meta.dev(), meta.ino(), born)
    }

    fn under_root(st: &State, path: &Path) -> bool {
        st.roots.iter().any(|r| path.starts_with(r))
    }

    /// Records a file's current bytes as durable. `Ok(false)` when it is outside every root.
    pub(crate) fn record_file(file: &File) -> io::Result<bool> {
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let path = fs::read_link(&fd_path)?;
        let mut st = state();
        if !under_root(&st, &path) {
            return Ok(false);
        }
        // Through /proc the bytes are readable even when `file` was opened write-only.
        let bytes = fs::read(&fd_path)?;
        st.files.insert(inode(&file.metadata()?), bytes);
        Ok(true)
    }

    /// Records a directory's current entries as durable. `Ok(false)` when outside every root.
    pub(crate) fn record_dir(dir: &Path) -> io::Result<bool> {
        let dir = fs::canonicalize(dir)?;
        let mut st = state();
        if !under_root(&st, &dir) {
            return Ok(false);
        }
        let listing = list(&dir)?;
        let entries = listing
            .into_iter()
            .map(|(name, (inode, is_dir))| {
                let bytes = st.files.get(&inode).cloned().unwrap_or_default();
                (name, Entry { inode, is_dir, bytes })
            })
            .collect();
        st.dirs.insert(inode(&fs::metadata(&dir)?), entries);
        Ok(true)
    }

    fn list(dir: &Path) -> io::Result<BTreeMap<OsString, (Inode, bool)>> {
        let mut out = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = fs::symlink_metadata(entry.path())?;
            out.insert(entry.file_name(), (inode(&meta), meta.is_dir()));
        }
        Ok(out)
    }

    /// Starts simulating `root` (an existing directory): from now on fsyncs under it are recorded
    /// instead of performed, and everything already in it counts as durable.
    pub fn enable(root: &Path) -> io::Result<()> {
        let root = fs::canonicalize(root)?;
        state().roots.push(root.clone());
        ENABLED.store(true, Ordering::Relaxed);
        mark_durable(&root)
    }

    /// Stops simulating `root` and forgets its records.
    pub fn disable(root: &Path) -> io::Result<()> {
        let root = fs::canonicalize(root)?;
        let mut st = state();
        st.roots.retain(|r| *r != root);
        if st.roots.is_empty() {
            ENABLED.store(false, Ordering::Relaxed);
            st.files.clear();
            st.dirs.clear();
        }
        Ok(())
    }

    /// Records everything under `dir` as durable (a freshly enabled root, or what a crash left).
    fn mark_durable(dir: &Path) -> io::Result<()> {
        for (name, (_, is_dir)) in list(dir)? {
            let path = dir.join(&name);
            if is_dir {
                mark_durable(&path)?;
            } else {
                record_file(&File::open(&path)?)?;
            }
        }
        record_dir(dir).map(|_| ())
    }

    /// What one [`crash`] did, for reports.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct CrashStats {
        pub files_kept: usize,
        /// Files whose unsynced change was cut short or dropped.
        pub files_torn: usize,
        /// Directories whose entries went back to their last fsync.
        pub dirs_reverted: usize,
    }

    /// Simulates a power loss under `root` (which must have been [`enable`]d): rewrites the tree
    /// to what the model (see the module docs) allows, chosen by `seed`. Afterwards everything
    /// on disk counts as durable. The caller must have stopped every writer first.
    pub fn crash(root: &Path, seed: u64) -> io::Result<CrashStats> {
        let root = fs::canonicalize(root)?;
        let mut rng = Rng::new(seed);
        let mut stats = CrashStats::default();
        {
            let st = state();
            // Where each inode lives now.
            let mut current = BTreeMap::new();
            index_tree(&root, &mut current)?;
            let out = crate::layout::with_suffix(&root, ".crash");
            if out.exists() {
                fs::remove_dir_all(&out)?;
            }
            let root_inode = inode(&fs::metadata(&root)?);
            rebuild(&st, &current, root_inode, Some(&root), &out, &mut rng, &mut stats)?;
            fs::remove_dir_all(&root)?;
            fs::rename(&out, &root)?;
        }
        mark_durable(&root)?;
        Ok(stats)
    }

    fn index_tree(dir: &Path, out: &mut BTreeMap<Inode, PathBuf>) -> io::Result<()> {
        for (name, (inode, is_dir)) in list(dir)? {
            let path = dir.join(name);
            if is_dir {
                index_tree(&path, out)?;
            }
            out.insert(inode, path);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn rebuild(
        st: &State,
        current: &BTreeMap<Inode, PathBuf>,
        dir_inode: Inode,
        dir_now: Option<&Path>,
        out: &Path,
        rng: &mut Rng,
        stats: &mut CrashStats,
    ) -> io::Result<()> {
        fs::create_dir(out)?;
        let durable = st.dirs.get(&dir_inode).cloned().unwrap_or_default();
        let now: Option<BTreeMap<OsString, Entry>> = match dir_now {
            Some(d) => Some(
                list(d)?
                    .into_iter()
                    .map(|(name, (inode, is_dir))| (name, Entry { inode, is_dir, bytes: Vec::new() }))
                    .collect(),
            ),
            None => None,
        };
        let changed = now.as_ref().is_some_and(|n| {
            n.len() != durable.len() || n.iter().any(|(k, e)| durable.get(k).is_none_or(|d| d.inode != e.inode))
        });
        let entries = match now {
            Some(n) if !changed || rng.below(2) == 0 => n,
            _ => {
                if changed {
                    stats.dirs_reverted += 1;
                }
                durable
            }
        };
        for (name, entry) in entries {
            let path_now = current.get(&entry.inode).map(PathBuf::as_path);
            let target = out.join(&name);
            if entry.is_dir {
                rebuild(st, current, entry.inode, path_now, &target, rng, stats)?;
                continue;
            }
            let durable = st.files.get(&entry.inode).unwrap_or(&entry.bytes);
            let now_bytes = match path_now {
                Some(p) => Some(fs::read(p)?),
                None => None,
            };
            let bytes = torn(durable, now_bytes.as_deref(), rng);
            if now_bytes.as_deref() != Some(bytes.as_slice()) {
                stats.files_torn += 1;
            }
            stats.files_kept += 1;
            fs::write(&target, bytes)?;
        }
        Ok(())
    }

    /// The bytes a file holds after the crash: its durable bytes plus a random prefix of the
    /// change since (see the module docs).
    fn torn(durable: &[u8], now: Option<&[u8]>, rng: &mut Rng) -> Vec<u8> {
        let Some(now) = now else { return durable.to_vec() };
        let common = durable.iter().zip(now).take_while(|(a, b)| a == b).count();
        if common < durable.len() && rng.below(2) == 0 {
            // Truncated or overwritten since the last fsync, and none of that reached the disk.
            return durable.to_vec();
        }
        let tail = now.len() - common;
        let keep = match rng.below(4) {
            0 => 0,
            1 => tail,
            _ => rng.below(tail as u64 + 1) as usize,
        };
        now[..common + keep].to_vec()
    }

    /// SplitMix64: small, fast and reproducible from a seed (no dependency needed).
    #[derive(Debug, Clone)]
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (0 when `n` is 0).
        pub fn below(&mut self, n: u64) -> u64 {
            if n == 0 {
                0
            } else {
                self.next_u64() % n
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::io::Write;

        #[test]
        fn crash_keeps_synced_bytes_and_tears_the_rest() {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            fs::create_dir(&root).unwrap();
            enable(&root).unwrap();
            let dir = root.join("p");
            fs::create_dir(&dir).unwrap();
            let synced = dir.join("synced");
            let mut f = File::create(&synced).unwrap();
            f.write_all(b"durable").unwrap();
            crate::io::sync_data(&f).unwrap();
            crate::io::sync_dir(&dir).unwrap();
            crate::io::sync_dir(&root).unwrap();
            f.write_all(b"-tail").unwrap();
            fs::write(dir.join("unsynced"), b"x").unwrap();
            let mut outcomes = std::collections::BTreeSet::new();
            for seed in 0..40 {
                // Rebuild the same state before every crash.
                let mut f = fs::OpenOptions::new().write(true).truncate(true).open(dir.join("synced")).unwrap();
                f.write_all(b"durable").unwrap();
                crate::io::sync_data(&f).unwrap();
                f.write_all(b"-tail").unwrap();
                fs::write(dir.join("unsynced"), b"x").unwrap();
                crate::io::sync_dir(&dir).unwrap_or(());
                crash(&root, seed).unwrap();
                let got = fs::read(dir.join("synced")).unwrap();
                assert!(got.starts_with(b"durable") && b"durable-tail".starts_with(&got), "{got:?}");
                outcomes.insert(got.len());
            }
            assert!(outcomes.contains(&7) && outcomes.contains(&12), "{outcomes:?}");
            disable(&root).unwrap();
        }

        #[test]
        fn crash_drops_entries_of_unsynced_dirs_and_keeps_renamed_inodes() {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("root");
            fs::create_dir(&root).unwrap();
            let dir = root.join("p");
            fs::create_dir(&dir).unwrap();
            enable(&root).unwrap();
            let mut saw_revert = false;
            for seed in 0..40 {
                let a = dir.join("a");
                let mut f = File::create(&a).unwrap();
                f.write_all(b"abc").unwrap();
                crate::io::sync_data(&f).unwrap();
                crate::io::sync_dir(&dir).unwrap();
                // Renamed but the directory never fsynced again.
                fs::rename(&a, dir.join("b")).unwrap();
                crash(&root, seed).unwrap();
                let a_exists = dir.join("a").exists();
                let b_exists = dir.join("b").exists();
                assert!(a_exists != b_exists, "exactly one name survives");
                let name = if a_exists { "a" } else { "b" };
                assert_eq!(fs::read(dir.join(name)).unwrap(), b"abc");
                saw_revert |= a_exists;
                let _ = fs::remove_file(dir.join("a"));
                let _ = fs::remove_file(dir.join("b"));
            }
            assert!(saw_revert);
            disable(&root).unwrap();
        }
    }
}
