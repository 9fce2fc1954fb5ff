"""confluent-kafka (the current librdkafka) against the release `sluice` binary: produce/consume
per codec with keys, headers and timestamps checked exactly; admin create (validate_only,
duplicate), list and delete topics; cluster metadata (brokers, leaders, describe_cluster);
watermarks and offsets_for_times. These are the calls Python users make first."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def admin(b):
    return AdminClient({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4"})


def create(b, name, partitions=1, config=None, validate_only=False):
    a = admin(b)  # keep the client alive until the future resolves
    fs = a.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                         validate_only=validate_only, operation_timeout=10, request_timeout=30)
    return fs[name].result(timeout=30)


def producer(b, **extra):
    conf = {"bootstrap.servers": b.bootstrap, "broker.address.family": "v4", "acks": "all",
            "enable.idempotence": False, "linger.ms": 20, "message.timeout.ms": 20000}
    conf.update({k.replace("_", "."): v for k, v in extra.items()})
    return Producer(conf)


def produce(p, topic, records):
    """records: list of dicts(partition,key,value,headers,timestamp). Returns [(partition, offset)]."""
    results = [None] * len(records)

    def cb(i):
        def f(err, msg):
            results[i] = err if err else (msg.partition(), msg.offset())
        return f

    for i, r in enumerate(records):
        while True:
            try:
                p.produce(topic, value=r.get("value"), key=r.get("key"), partition=r.get("partition", -1),
                          headers=r.get("headers"), timestamp=r.get("timestamp", 0), on_delivery=cb(i))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(30) == 0, "messages still in flight after 30 s"
    errors = [r for r in results if not isinstance(r, tuple)]
    assert not errors, f"delivery failed: {errors[:3]}"
    return results


def consume_all(b, topic, partitions, expected, timeout=30):
    """Assign from the beginning, read until EOF on every partition; assert exactly `expected`."""
    c = Consumer({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4", "group.id": "compat",
                  "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, eof, deadline = [], set(), time.time() + timeout
    try:
        while len(eof) < len(partitions):
            assert time.time() < deadline, f"no EOF on all partitions after {timeout}s; got {len(out)} records"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            out.append(m)
    finally:
        c.close()
    assert len(out) == expected, f"expected {expected} records, got {len(out)}"
    return sorted(out, key=lambda m: (m.partition(), m.offset()))


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_per_codec(broker, topic, codec):
    print(f"check: {codec}: 200 records with keys/headers/timestamps round-trip over 2 partitions")
    create(broker, topic, 2)
    recs = [{"partition": i % 2, "key": f"k{i}".encode() if i % 7 else None,
             "value": (f"value-{i}-" + "z" * (i % 50)).encode() if i % 13 else None,
             "headers": [("h", f"{i}".encode()), ("n", None)] if i % 3 == 0 else None,
             "timestamp": 1_650_000_000_000 + i} for i in range(200)]
    acks = produce(producer(broker, compression_type=codec), topic, recs)
    for part in (0, 1):
        offs = [o for (p, o) in acks if p == part]
        assert offs == list(range(len(offs))), f"acked offsets in partition {part}"
    got = consume_all(broker, topic, [0, 1], 200)
    want = {0: [r for r in recs if r["partition"] == 0], 1: [r for r in recs if r["partition"] == 1]}
    seen = {0: 0, 1: 0}
    for m in got:
        w = want[m.partition()][seen[m.partition()]]
        assert m.offset() == seen[m.partition()]
        seen[m.partition()] += 1
        assert m.key() == w["key"] and m.value() == w["value"]
        assert (m.headers() or None) == w["headers"]
        assert m.timestamp() == (1, w["timestamp"])  # TIMESTAMP_CREATE_TIME


def test_admin_create_list_delete(broker, topic):
    a = admin(broker)
    print("check: create with config, validate_only creates nothing, duplicate -> TOPIC_ALREADY_EXISTS")
    create(broker, topic, 3, {"retention.ms": "3600000"})
    dry = topic + "-dry"
    create(broker, dry, 1, validate_only=True)
    md = a.list_topics(timeout=10)
    assert topic in md.topics and dry not in md.topics
    assert len(md.topics[topic].partitions) == 3
    with pytest.raises(KafkaException) as e:
        create(broker, topic, 3)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    with pytest.raises(KafkaException) as e:
        create(broker, topic + "-zero", 0)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    print("check: delete -> gone from list_topics; deleting again -> UNKNOWN_TOPIC_OR_PART")
    a.delete_topics([topic], operation_timeout=10)[topic].result(timeout=30)
    deadline = time.time() + 10
    while topic in a.list_topics(timeout=10).topics:
        assert time.time() < deadline, "deleted topic still listed"
        time.sleep(0.1)
    with pytest.raises(KafkaException) as e:
        a.delete_topics([topic], operation_timeout=10)[topic].result(timeout=30)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_metadata_and_describe_cluster(broker, topic):
    create(broker, topic, 4)
    md = admin(broker).list_topics(timeout=10)
    print(f"check: one broker id 1 at {broker.bootstrap}; 4 partitions led by 1")
    assert list(md.brokers) == [1]
    assert (md.brokers[1].host, md.brokers[1].port) == ("127.0.0.1", broker.port)
    parts = md.topics[topic].partitions
    assert sorted(parts) == [0, 1, 2, 3]
    for p in parts.values():
        assert p.leader == 1 and p.replicas == [1] and p.isrs == [1] and p.error is None
    a = admin(broker)
    desc = a.describe_cluster(request_timeout=10).result(timeout=30)
    assert [n.id for n in desc.nodes] == [1]
    assert desc.controller.id == 1 and desc.cluster_id


@pytest.mark.broker_overrides({"num.partitions": "3"})
def test_auto_create_on_produce(broker, topic):
    print("check: producing to an unknown topic creates it with num.partitions=3")
    assert produce(producer(broker), topic, [{"value": b"x", "partition": 2}]) == [(2, 0)]
    assert len(admin(broker).list_topics(topic, timeout=10).topics[topic].partitions) == 3


def test_watermarks_and_offsets_for_times(broker, topic):
    create(broker, topic, 1)
    recs = [{"partition": 0, "value": f"{i}".encode(), "timestamp": 2_000_000 + 1000 * i} for i in range(30)]
    produce(producer(broker, linger_ms=50), topic, recs)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4", "group.id": "compat"})
    try:
        print("check: watermarks (0, 30); offsets_for_times exact, between and past the end")
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 30)
        for ts, want in [(0, 0), (2_000_000, 0), (2_010_500, 11), (2_029_000, 29), (2_029_001, -1)]:
            r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert r[0].error is None and r[0].offset == want, f"offsets_for_times({ts}) = {r[0]}"
    finally:
        c.close()
