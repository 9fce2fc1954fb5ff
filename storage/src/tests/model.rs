//! Model-based test: random appends, reads, clean reopens and crash reopens against an in-memory
//! list of (offset, stored bytes); every read must return exactly the model's batches.

use proptest::prelude::*;

use super::*;
use crate::LogConfig;

#[derive(Debug, Clone)]
enum Op {
    /// One append call with several batches of (records, value length).
    Append(Vec<(usize, usize)>),
    /// Read at a fraction of the LEO with a byte budget and an optional max offset fraction.
    Read {
        at: f64,
        max_bytes: usize,
        max_offset: Option<f64>,
        min_one_batch: bool,
    },
    Flush,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((1usize..6, 0usize..120), 1..4).prop_map(Op::Append),
        4 => (0.0f64..1.0, 1usize..2000, prop::option::of(0.0f64..1.0), any::<bool>())
            .prop_map(|(at, max_bytes, max_offset, min_one_batch)| Op::Read { at, max_bytes, max_offset, min_one_batch }),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// What the model says a read returns.
fn expected_read(model: &[(i64, i64, Bytes)], fetch: i64, max_bytes: usize, max_offset: i64, min_one: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(start) = model.iter().position(|(_, last, _)| *last >= fetch) else { return out };
    for (i, (_, last, bytes)) in model[start..].iter().enumerate() {
        if *last >= max_offset {
            break;
        }
        if out.len() + bytes.len() > max_bytes {
            if i == 0 && min_one {
                out.extend_from_slice(bytes);
            }
            break;
        }
        out.extend_from_slice(bytes);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..40), segment_bytes in 200u64..1500, interval in 1u64..400) {
        let root = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, index_interval_bytes: interval, ..LogConfig::default() };
        let (mut mgr, _) = open_with(&[root.path()], config.clone());
        let t = tp("model-topic", 0);
        mgr.get_or_create(&t, TOPIC_ID, config.clone()).unwrap();
        // (base offset, last offset, stored bytes)
        let mut model: Vec<(i64, i64, Bytes)> = Vec::new();
        let mut epoch = 0;
        for op in ops {
            let p = mgr.get(&t).unwrap();
            let leo = model.last().map(|(_, last, _)| last + 1).unwrap_or(0);
            match op {
                Op::Append(specs) => {
                    epoch += 1;
                    let batches: Vec<RecordBatch> = specs.iter().map(|&(n, v)| batch(n, v, leo)).collect();
                    let info = p.append(&batches, epoch).unwrap();
                    prop_assert_eq!(info.first_offset, leo);
                    let mut offset = leo;
                    for b in &batches {
                        model.push((offset, b.last_offset() - b.base_offset() + offset, stored(b, offset, epoch)));
                        offset = model.last().unwrap().1 + 1;
                    }
                    prop_assert_eq!(info.last_offset, offset - 1);
                }
                Op::Read { at, max_bytes, max_offset, min_one_batch } => {
                    let fetch = (leo as f64 * at) as i64;
                    let max_offset = max_offset.map(|f| (leo as f64 * f) as i64).unwrap_or(i64::MAX);
                    let r = p.read(fetch, max_bytes, max_offset, min_one_batch).unwrap();
                    let expected = expected_read(&model, fetch, max_bytes, max_offset, min_one_batch);
                    prop_assert_eq!(r.log_end_offset, leo);
                    prop_assert!(r.records[..] == expected[..], "read({}, {}, {}, {}) returned {} bytes, model {}", fetch, max_bytes, max_offset, min_one_batch, r.records.len(), expected.len());
                    prop_assert!(p.read(leo + 1, 100, i64::MAX, true).is_err());
                }
                Op::Flush => {
                    p.flush().unwrap();
                    prop_assert_eq!(p.recovery_point(), leo);
                }
                Op::Reopen { clean } => {
                    if clean {
                        mgr.shutdown().unwrap();
                    }
                    drop(p);
                    drop(mgr);
                    let (m, report) = open_with(&[root.path()], config.clone());
                    if clean {
                        prop_assert_eq!(report.segments_recovered, 0);
                    } else {
                        prop_assert_eq!(report.unclean_dirs.len(), 1);
                    }
                    prop_assert_eq!(report.bytes_truncated, 0);
                    mgr = m;
                    prop_assert_eq!(mgr.get(&t).unwrap().offsets().log_end_offset, leo);
                }
            }
        }
        // Everything, from every offset.
        let p = mgr.get(&t).unwrap();
        let leo = model.last().map(|(_, last, _)| last + 1).unwrap_or(0);
        for fetch in 0..leo {
            let r = p.read(fetch, usize::MAX, i64::MAX, false).unwrap();
            let expected = expected_read(&model, fetch, usize::MAX, i64::MAX, false);
            prop_assert!(r.records[..] == expected[..]);
        }
    }
}
