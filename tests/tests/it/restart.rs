//! Clean restart: after `shutdown()` and a new `start()` on the same data directory, every record
//! is still there (contents, offsets, timestamps), topics keep their partition counts, configs
//! and topic ids, deleted topics stay deleted, and new records continue at the old log end
//! offset (no offset reuse). Uses small segments so the data spans several segment files.

use rdkafka::{Offset, Timestamp};
use sluice_tests::*;

use crate::admin::raw_topic_metadata;

#[tokio::test]
async fn clean_restart_keeps_data_and_topic_ids() {
    let broker = TestBroker::start(&[("log.segment.bytes", "16384")]);
    let (topic, gone) = (topic_name("restart"), topic_name("restart-deleted"));
    create_topic(&broker.bootstrap(), &topic, 3, &[]).await;
    create_topic(&broker.bootstrap(), &gone, 1, &[]).await;
    let p = producer(&broker.bootstrap(), &[("compression.codec", "gzip"), ("linger.ms", "10")]);
    let sent: Vec<TestRecord> = (0..600)
        .map(|i| TestRecord {
            key: Some(format!("k{i}").into_bytes()),
            timestamp: Some(1_600_000_000_000 + i),
            ..TestRecord::value(pseudo_random_bytes(i as u64, 200)).to_partition((i % 3) as i32)
        })
        .collect();
    produce_ok(&p, &topic, &sent).await;
    drop(p);
    let admin = admin(&broker.bootstrap());
    assert_eq!(admin.delete_topics(&[&gone], &admin_opts()).await.unwrap(), vec![Ok(gone.clone())]);
    drop(admin);
    let (_, _, id_before) = raw_topic_metadata(broker.addr(), &topic, false);

    check!("clean shutdown, start again on {}", broker.data_dir().display());
    let broker = broker.restart();

    let (err, parts, id_after) = raw_topic_metadata(broker.addr(), &topic, false);
    check!("after restart: topic exists with 3 partitions and the same topic id {id_before}");
    assert_eq!((err, parts), (0, 3));
    assert_eq!(id_after, id_before, "topic id must survive a restart");
    check!("deleted topic {gone} is still gone");
    assert_eq!(raw_topic_metadata(broker.addr(), &gone, false).0, 3);

    for part in 0..3 {
        assert_eq!(watermarks(&broker.bootstrap(), &topic, part), (0, 200), "watermarks of partition {part}");
    }
    let got = consume_exactly(&broker.bootstrap(), &topic, &[0, 1, 2], Offset::Beginning, 600);
    check!("all 600 records intact: key, value, timestamp, offset");
    for c in &got {
        let i = c.offset * 3 + c.partition as i64;
        let w = &sent[i as usize];
        assert_eq!(c.key, w.key, "key at {}/{}", c.partition, c.offset);
        assert_eq!(c.value, w.value, "value at {}/{}", c.partition, c.offset);
        assert_eq!(c.timestamp, Timestamp::CreateTime(w.timestamp.unwrap()));
    }

    check!("new records continue at offset 200 in each partition");
    let p = producer(&broker.bootstrap(), &[]);
    let more: Vec<TestRecord> = (0..3).map(|i| TestRecord::value("after").to_partition(i)).collect();
    assert_eq!(produce_ok(&p, &topic, &more).await, vec![(0, 200), (1, 200), (2, 200)]);

    check!("a second restart right away (nothing new since the last clean start) also works");
    drop(p);
    let broker = broker.restart();
    assert_eq!(watermarks(&broker.bootstrap(), &topic, 2), (0, 201));
    broker.shutdown();
}
