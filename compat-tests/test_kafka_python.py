"""kafka-python (a pure-Python client with its own protocol code, not librdkafka) against the
release `sluice` binary: per-codec produce/consume with keys, headers and timestamps checked,
admin create/list/delete topics, partitions added with explicit assignments, cluster metadata,
offsets_for_times, every partition making progress under a tiny fetch_max_bytes, and
list_config_resources (ListConfigResources v1) with its type filter. A second, independent
protocol implementation catches encoding assumptions librdkafka happens to tolerate."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import InvalidReplicationAssignmentError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=30000)


def consume_exactly(b, topic, partitions, n, timeout=30):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=1000)
    tps = [TopicPartition(topic, p) for p in partitions]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    out, deadline = [], time.time() + timeout
    while len(out) < n:
        assert time.time() < deadline, f"got {len(out)} of {n} records after {timeout}s"
        for recs in c.poll(timeout_ms=200).values():
            out.extend(recs)
    # Nothing beyond n: positions equal the end offsets.
    ends = c.end_offsets(tps)
    assert sum(ends.values()) == n, f"end offsets {ends} != {n}"
    c.close()
    assert len(out) == n
    return sorted(out, key=lambda r: (r.partition, r.offset))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_produce_consume_per_codec(broker, topic, codec):
    print(f"check: kafka-python {codec}: 150 records round-trip with keys, headers, timestamps")
    a = admin(broker)
    a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
    a.close()
    # enable_idempotence=False: kafka-python 3 defaults to idempotence (InitProducerId), out of
    # scope for Sluice so far.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type=codec, linger_ms=20,
                      enable_idempotence=False)
    futs, sent = [], []
    for i in range(150):
        rec = dict(partition=i % 2, key=f"k{i}".encode() if i % 5 else None,
                   value=(f"v{i}-" + "q" * (i % 60)).encode(),
                   headers=[("hk", f"{i}".encode())] if i % 2 else [],
                   timestamp_ms=1_660_000_000_000 + i)
        sent.append(rec)
        futs.append(p.send(topic, **rec))
    p.flush(30)
    acks = [f.get(timeout=30) for f in futs]
    p.close()
    for part in (0, 1):
        offs = [m.offset for m in acks if m.partition == part]
        assert offs == list(range(len(offs)))
    got = consume_exactly(broker, topic, [0, 1], 150)
    by_pos = {(m.partition, m.offset): s for m, s in zip(acks, sent)}
    for r in got:
        s = by_pos[(r.partition, r.offset)]
        assert (r.key, r.value, r.timestamp) == (s["key"], s["value"], s["timestamp_ms"])
        assert [(k, v) for k, v in r.headers] == s["headers"]


def test_admin_and_metadata(broker, topic):
    a = admin(broker)
    print("check: create 3-partition topic; duplicate -> TopicAlreadyExistsError; listed; metadata leader 1")
    a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    with pytest.raises(TopicAlreadyExistsError):
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    assert topic in a.list_topics()
    desc = a.describe_topics([topic])
    assert len(desc) == 1 and desc[0]["error_code"] == 0
    parts = sorted(desc[0]["partitions"], key=lambda p: p["partition_index"])
    assert [p["partition_index"] for p in parts] == [0, 1, 2]
    assert all(p["leader_id"] == 1 for p in parts)
    cluster = a.describe_cluster()
    assert [b["broker_id"] for b in cluster["brokers"]] == [1]
    assert cluster["controller_id"] == 1
    print("check: delete -> not listed; delete again -> UnknownTopicOrPartitionError")
    a.delete_topics([topic])
    deadline = time.time() + 10
    while topic in a.list_topics():
        assert time.time() < deadline
        time.sleep(0.1)
    with pytest.raises(UnknownTopicOrPartitionError):
        a.delete_topics([topic])
    a.close()


def test_create_partitions_with_assignments(broker, topic):
    a = admin(broker)
    a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    print("check: 1 -> 4 partitions with assignments [[1],[1],[1]] onto this broker -> created, led by 1")
    a.create_partitions({topic: NewPartitions(total_count=4, new_assignments=[[1], [1], [1]])})
    parts = sorted(a.describe_topics([topic])[0]["partitions"], key=lambda p: p["partition_index"])
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"]) for p in parts] == [(i, 1, [1]) for i in range(4)]
    print("check: as in Kafka, 3 assignments for 1 new partition and an unknown broker -> "
          "INVALID_REPLICA_ASSIGNMENT, and nothing changes")
    with pytest.raises(InvalidReplicationAssignmentError, match="Increasing the number of partitions by 1 but 3"):
        a.create_partitions({topic: NewPartitions(total_count=5, new_assignments=[[1], [1], [1]])})
    with pytest.raises(InvalidReplicationAssignmentError):
        a.create_partitions({topic: NewPartitions(total_count=5, new_assignments=[[2]])})
    assert len(a.describe_topics([topic])[0]["partitions"]) == 4
    a.close()


def test_small_fetch_max_bytes_reaches_every_partition(broker, topic):
    a = admin(broker)
    a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    for i in range(40):
        for part in (0, 1):
            p.send(topic, value=f"p{part}-{i:03d}".encode() * 8, partition=part)
        p.flush(30)
    p.close()
    print("check: fetch_max_bytes=300 (a batch or two per response): both partitions make progress "
          "together, not one after the other; every record arrives, in order")
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      fetch_max_bytes=300, max_partition_fetch_bytes=300, consumer_timeout_ms=1000)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got = {0: [], 1: []}
    # How far each partition had got when the other first returned records.
    other_when_first = {}
    deadline = time.time() + 30
    while len(got[0]) < 40 or len(got[1]) < 40:
        assert time.time() < deadline, f"after 30 s: {len(got[0])} records of partition 0, {len(got[1])} of 1"
        for tp, recs in c.poll(timeout_ms=200).items():
            if recs and tp.partition not in other_when_first:
                other_when_first[tp.partition] = len(got[1 - tp.partition])
            got[tp.partition].extend(r.offset for r in recs)
    c.close()
    assert got == {0: list(range(40)), 1: list(range(40))}
    # The broker moves a partition that returned records to the back of the fetch session (as
    # Kafka does), so neither partition waits for the other to be drained.
    assert max(other_when_first.values()) < 40, f"one partition waited for the other: {other_when_first}"


def test_offsets_for_times(broker, topic):
    a = admin(broker)
    a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    a.close()
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=50, enable_idempotence=False)
    for i in range(20):
        p.send(topic, value=f"{i}".encode(), partition=0, timestamp_ms=5_000_000 + 100 * i)
    p.flush(30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    tp = TopicPartition(topic, 0)
    print("check: beginning 0, end 20, offsets_for_times 5_000_550 -> 6, past the end -> None")
    assert c.beginning_offsets([tp]) == {tp: 0}
    assert c.end_offsets([tp]) == {tp: 20}
    r = c.offsets_for_times({tp: 5_000_550})[tp]
    assert (r.offset, r.timestamp) == (6, 5_000_600)
    assert c.offsets_for_times({tp: 9_000_000})[tp] is None
    c.close()


def test_list_config_resources(broker, topic):
    """ListConfigResources: v1 (kafka-python picks it) lists each broker as a broker logger and a
    broker, then every topic, and filters by type; Sluice has no group configs or client-metrics
    subscriptions, so those types list nothing."""
    a = admin(broker)
    a.create_topics([NewTopic(topic, 1, 1)])
    everything = a.list_config_resources()
    assert everything["broker"] == ["1"] and everything["broker_logger"] == ["1"], everything
    assert topic in everything["topic"] and "__consumer_offsets" in everything["topic"], everything
    assert "group" not in everything and "client_metrics" not in everything, everything
    assert a.list_config_resources(["TOPIC"]) == {"topic": everything["topic"]}
    assert a.list_config_resources(["BROKER", "CLIENT_METRICS", "GROUP"]) == {"broker": ["1"]}
    a.close()
