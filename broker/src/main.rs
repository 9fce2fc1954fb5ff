//! The `sluice` binary: everything lives in the library (`sluice::cli_main`).

// mimalloc keeps freed memory for reuse instead of returning it to the kernel at once: Fetch
// reads allocate a buffer of up to a partition's max bytes per partition per request, and with
// the system allocator each of those large buffers was a fresh mmap — page faults and kernel
// page zeroing took about a third of the broker's CPU when consumers read from the start of a
// log (docs/benchmarks.md has the profile and the before/after).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::cli_main()
}
