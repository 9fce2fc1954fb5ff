"""kafka-python's KafkaAdminClient moving partitions between log dirs (AlterReplicaLogDirs) on a
release `sluice` started with two `log.dirs`, as `kafka-reassign-partitions --reassignment-json-file`
with log dirs does: describe_log_dirs finds each partition's dir (absolute paths, the file
system's total and usable bytes), alter_replica_log_dirs moves them while records keep arriving,
describe_log_dirs shows the move done, every record is still there at continuous offsets, and the
errors are Kafka's (a dir that is not configured, a partition the broker does not host)."""

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import LogDirNotFoundError, NoError, ReplicaNotAvailableError
from kafka.structs import TopicPartitionReplica

from conftest import Broker


def placement(admin, topic):
    """{partition: [(log dir, is future)]} from describe_log_dirs, plus the raw dir results."""
    out = {}
    [resp] = admin.describe_log_dirs()
    dirs = resp["log_dirs"]
    for d in dirs:
        assert d["error_code"] == 0, d
        for t in d["topics"]:
            if t["name"] != topic:
                continue
            for p in t["partitions"]:
                out.setdefault(p["partition_index"], []).append((d["log_dir"], p["is_future_key"]))
    return out, dirs


def test_kafka_python_moves_partitions_between_log_dirs(tmp_path, topic):
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    b = Broker(tmp_path / "data", tmp_path / "broker.log",
               {"log.dirs": f"{d1},{d2}", "log.segment.bytes": "65536"}).start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=30000)
        admin.create_topics([NewTopic(topic, 2, 1)])
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
        for i in range(2000):
            producer.send(topic, value=b"r-%06d" % i + b"x" * 300, partition=i % 2)
        producer.flush()

        before, dirs = placement(admin, topic)
        assert sorted(d["log_dir"] for d in dirs) == sorted([str(d1), str(d2)])
        for d in dirs:
            assert 0 < d["usable_bytes"] <= d["total_bytes"], d
        assert sorted(before) == [0, 1]
        assert all(len(copies) == 1 and not copies[0][1] for copies in before.values()), before
        target = {p: str(d2) if copies[0][0] == str(d1) else str(d1) for p, copies in before.items()}

        result = admin.alter_replica_log_dirs(
            {TopicPartitionReplica(topic, p, 1): d for p, d in target.items()})
        assert result == {TopicPartitionReplica(topic, p, 1): NoError for p in target}, result
        # Records keep arriving while the partitions move.
        for i in range(2000, 2500):
            producer.send(topic, value=b"r-%06d" % i, partition=i % 2)
        producer.flush()

        deadline = time.time() + 30
        while True:
            now, _ = placement(admin, topic)
            if all(now.get(p) == [(d, False)] for p, d in target.items()):
                break
            assert time.time() < deadline, f"not moved: {now}"
            time.sleep(0.05)
        for p, d in target.items():
            other = d1 if d == str(d2) else d2
            assert (tmp_path / d / f"{topic}-{p}").is_dir()
            assert not (other / f"{topic}-{p}").exists()

        # Back where it is: nothing to do. Kafka's errors for the rest.
        result = admin.alter_replica_log_dirs({
            TopicPartitionReplica(topic, 0, 1): target[0],
            TopicPartitionReplica(topic, 1, 1): str(tmp_path / "not-a-log-dir"),
            TopicPartitionReplica("no-such-topic", 0, 1): str(d1),
        })
        assert result == {
            TopicPartitionReplica(topic, 0, 1): NoError,
            TopicPartitionReplica(topic, 1, 1): LogDirNotFoundError,
            TopicPartitionReplica("no-such-topic", 0, 1): ReplicaNotAvailableError,
        }, result

        consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", consumer_timeout_ms=1000)
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got, deadline = [], time.time() + 30
        while len(got) < 2500:
            assert time.time() < deadline, f"read {len(got)} of 2500"
            for recs in consumer.poll(timeout_ms=200).values():
                got.extend(recs)
        consumer.close()
        assert len(got) == 2500
        for p in (0, 1):
            offsets = [r.offset for r in got if r.partition == p]
            assert offsets == list(range(1250)), f"partition {p}"
            values = [int(r.value[2:8]) for r in got if r.partition == p]
            assert values == list(range(p, 2500, 2))
        producer.close()
        admin.close()
    finally:
        assert b.stop() == 0, b.log()
