"""Partition administration and offset validation through real clients against the release `sluice`
binary: kafka-python 3's KafkaAdminClient (elect_leaders, alter/list_partition_reassignments,
describe_metadata_quorum, describe_topic_partitions paged across topics), kafka-python's consumer
validating its position with OffsetForLeaderEpoch (KIP-320), and confluent-kafka's elect_leaders.
Each asserts Kafka's answers: codes per partition, offsets, pages."""

import time

import pytest
from confluent_kafka import ElectionType, KafkaError
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (InvalidReplicationAssignmentError, LogTruncationError, NoReassignmentInProgressError,
                          UnknownTopicOrPartitionError)
from kafka.structs import OffsetAndMetadata

PREFERRED, UNCLEAN = 0, 1


def admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=30000)


def create(a, topics):
    a.create_topics([NewTopic(name, partitions, 1) for name, partitions in topics])


def produce(b, topic, n, partition=0):
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all")
    for i in range(n):
        p.send(topic, value=b"v%d" % i, partition=partition)
    p.flush()
    p.close()


def test_kafka_python_elect_leaders(broker, topic):
    a = admin(broker)
    create(a, [(topic, 3)])
    for election in (PREFERRED, UNCLEAN):
        # Every partition already has its preferred (only) leader.
        resp = a.elect_leaders(election, {topic: [0, 1, 2]})
        assert resp.error_code == 0
        [result] = resp.replica_election_results
        assert result.topic == topic
        assert sorted((p.partition_id, p.error_code) for p in result.partition_result) == \
            [(0, 84), (1, 84), (2, 84)]
        # A partition that does not exist.
        resp = a.elect_leaders(election, {topic: [0, 9]}, raise_errors=False)
        codes = {p.partition_id: p.error_code for r in resp.replica_election_results for p in r.partition_result}
        assert codes == {0: 84, 9: 3}
        with pytest.raises(UnknownTopicOrPartitionError):
            a.elect_leaders(election, {"no-such-topic": [0]})
    # All partitions (kafka-python names each one): none needs an election.
    resp = a.elect_leaders(PREFERRED, None)
    assert resp.error_code == 0
    listed = {r.topic: sorted((p.partition_id, p.error_code, p.error_message) for p in r.partition_result)
              for r in resp.replica_election_results}
    message = "Leader election not needed for topic partition."
    assert listed[topic] == [(0, 84, message), (1, 84, message), (2, 84, message)]
    assert len(listed["__consumer_offsets"]) == 50
    a.close()


def test_kafka_python_partition_reassignments(broker, topic):
    a = admin(broker)
    create(a, [(topic, 3)])
    results = a.alter_partition_reassignments({
        TopicPartition(topic, 0): [broker.node_id],   # its current replica: done at once
        TopicPartition(topic, 1): None,               # cancel: nothing in progress
        TopicPartition(topic, 2): [broker.node_id + 1],  # no such broker
        TopicPartition(topic, 7): [broker.node_id],   # no such partition
    })
    assert results[TopicPartition(topic, 0)] is None
    assert results[TopicPartition(topic, 1)] is NoReassignmentInProgressError
    assert results[TopicPartition(topic, 2)] is InvalidReplicationAssignmentError
    assert results[TopicPartition(topic, 7)] is UnknownTopicOrPartitionError
    # Nothing is ever in flight: all partitions, named ones and unknown topics list nothing.
    assert a.list_partition_reassignments() == {}
    assert a.list_partition_reassignments({topic: [0, 1, 2]}) == {}
    assert a.list_partition_reassignments([TopicPartition("no-such-topic", 0)]) == {}
    a.close()


def test_kafka_python_describe_metadata_quorum(broker, topic):
    a = admin(broker)
    before = a.describe_metadata_quorum()
    [t] = before["topics"]
    assert t["topic_name"] == "__cluster_metadata"
    [p] = t["partitions"]
    assert p["error"] is None
    assert p["partition_index"] == 0 and p["leader_id"] == broker.node_id and p["leader_epoch"] >= 1
    [voter] = p["current_voters"]
    assert voter["replica_id"] == broker.node_id
    assert voter["log_end_offset"] == p["high_watermark"] >= 1
    now_ms = time.time() * 1000
    assert abs(voter["last_fetch_timestamp"] - now_ms) < 60_000
    assert abs(voter["last_caught_up_timestamp"] - now_ms) < 60_000
    assert p["observers"] == []
    [node] = before["nodes"]
    assert node["node_id"] == broker.node_id
    assert [(l["host"], l["port"]) for l in node["listeners"]] == [("127.0.0.1", broker.port)]
    # Each metadata change is a record: the high watermark moves with topic creation.
    create(a, [(topic, 1), (topic + "-b", 2)])
    after = a.describe_metadata_quorum()["topics"][0]["partitions"][0]
    assert after["high_watermark"] == p["high_watermark"] + 2
    assert after["leader_epoch"] == p["leader_epoch"]
    a.close()
    # A restart is a new quorum epoch, and the offset survives it.
    broker.stop()
    broker.start()
    a = admin(broker)
    restarted = a.describe_metadata_quorum()["topics"][0]["partitions"][0]
    assert restarted["leader_epoch"] == after["leader_epoch"] + 1
    assert restarted["high_watermark"] == after["high_watermark"] + 1
    a.close()


def test_kafka_python_describe_topic_partitions_pages(broker, topic):
    a = admin(broker)
    layout = [(topic + "-a", 3), (topic + "-b", 1), (topic + "-c", 4)]
    create(a, layout)
    names = [name for name, _ in layout]
    expected = [(name, p) for name, n in layout for p in range(n)]
    seen, pages, cursor = [], [], None
    while True:
        page = a.describe_topic_partitions(names + ["no-such-topic"], response_partition_limit=3, cursor=cursor)
        pages.append(page)
        for t in page["topics"]:
            if t["name"] == "no-such-topic":
                assert t["error_code"] == 3 and t["partitions"] == []
                continue
            assert t["error_code"] == 0 and not t["is_internal"]
            assert t["topic_id"] is not None
            for p in t["partitions"]:
                assert (p["leader_id"], p["replica_nodes"], p["isr_nodes"]) == \
                    (broker.node_id, [broker.node_id], [broker.node_id])
                seen.append((t["name"], p["partition_index"]))
        assert sum(len(t["partitions"]) for t in page["topics"]) <= 3
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    # 8 partitions three at a time: a, then a+b+c, then c (the unknown topic comes last).
    assert [p["next_cursor"] for p in pages] == [
        {"topic_name": topic + "-b", "partition_index": 0},
        {"topic_name": topic + "-c", "partition_index": 2},
        None,
    ]
    # Internal topics are flagged as such.
    page = a.describe_topic_partitions(["__consumer_offsets"], response_partition_limit=1)
    assert page["topics"][0]["is_internal"] and len(page["topics"][0]["partitions"]) == 1
    assert page["next_cursor"] == {"topic_name": "__consumer_offsets", "partition_index": 1}
    a.close()


def assigned_consumer(b, tp, reset):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset=reset, consumer_timeout_ms=1000)
    c.assign([tp])
    return c


def validate(c, tp, position):
    """Seek to `position` (an offset in leader epoch 0) and make the consumer validate it with
    OffsetForLeaderEpoch, as it does when the leader's epoch moves past the position's."""
    state = c._subscription.assignment[tp]
    state.seek(position)
    assert state.request_position_validation()
    assert state.awaiting_validation


def test_kafka_python_consumer_validates_positions_with_offset_for_leader_epoch(broker, topic):
    tp = TopicPartition(topic, 0)
    a = admin(broker)
    create(a, [(topic, 1)])
    a.close()
    produce(broker, topic, 10)

    # A position inside epoch 0: the broker says epoch 0 ends at the log end (10), so the
    # position is valid and consumption goes on from it.
    c = assigned_consumer(broker, tp, "earliest")
    validate(c, tp, OffsetAndMetadata(4, "", 0))
    records = []
    deadline = time.time() + 20
    while len(records) < 6 and time.time() < deadline:
        for recs in c.poll(timeout_ms=200).values():
            records.extend(recs)
    assert [r.offset for r in records] == list(range(4, 10))
    assert all(r.leader_epoch == 0 for r in records)
    assert not c._subscription.assignment[tp].awaiting_validation
    c.close()

    # A position past the end of epoch 0 (as after an unclean election): the log diverges at 10.
    # With a reset policy the consumer moves to the divergence point...
    c = assigned_consumer(broker, tp, "earliest")
    validate(c, tp, OffsetAndMetadata(25, "", 0))
    deadline = time.time() + 20
    while c._subscription.assignment[tp].awaiting_validation and time.time() < deadline:
        c.poll(timeout_ms=200)
    assert c.position(tp) == 10
    c.close()

    # ...without one it reports the truncation with the offset where epoch 0 ends.
    c = assigned_consumer(broker, tp, "none")
    validate(c, tp, OffsetAndMetadata(25, "", 0))
    with pytest.raises(LogTruncationError) as err:
        deadline = time.time() + 20
        while time.time() < deadline:
            c.poll(timeout_ms=200)
    divergent = err.value.divergent_offsets[tp]
    assert (divergent.offset, divergent.leader_epoch) == (10, 0)
    c.close()


def test_confluent_elect_leaders(broker, topic):
    a = admin(broker)
    create(a, [(topic, 2)])
    a.close()
    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    for election in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        fut = ck.elect_leaders(election, [CkTopicPartition(topic, 0), CkTopicPartition(topic, 1),
                                          CkTopicPartition(topic, 5)])
        results = {tp.partition: err for tp, err in fut.result(timeout=30).items()}
        assert set(results) == {0, 1, 5}
        # ELECTION_NOT_NEEDED is reported per partition; the missing partition is unknown.
        for p in (0, 1):
            assert results[p].code() == KafkaError.ELECTION_NOT_NEEDED, results
        assert results[5].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, results
    # All partitions: nothing needed electing, so nothing is listed.
    assert ck.elect_leaders(ElectionType.PREFERRED, None).result(timeout=30) == {}



def test_confluent_consumer_validates_positions_with_offset_for_leader_epoch(tmp_path, topic):
    """librdkafka (KIP-320) validates a position that carries a leader epoch with
    OffsetForLeaderEpoch before fetching from it; the broker's answer lets it go on from there."""
    import urllib.request

    from confluent_kafka import Consumer, Producer
    from conftest import Broker, free_port

    metrics_port = free_port()
    b = Broker(tmp_path / "data", tmp_path / "broker.log", {"metrics.listener": f"127.0.0.1:{metrics_port}"}).start()
    try:
        def requests_of(api):
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
            for line in text.splitlines():
                if line.startswith(f'sluice_requests_total{{api="{api}"}}'):
                    return float(line.split()[-1])
            return 0.0

        p = Producer({"bootstrap.servers": b.bootstrap})
        for i in range(10):
            p.produce(topic, value=b"v%d" % i, partition=0)
        assert p.flush(30) == 0
        assert requests_of("OffsetForLeaderEpoch") == 0
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-" + topic,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        # A position read in leader epoch 0 (as from a committed offset or an earlier fetch).
        c.assign([CkTopicPartition(topic, 0, 5, leader_epoch=0)])
        got, deadline = [], time.time() + 30
        while len(got) < 5 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m)
        assert [m.offset() for m in got] == [5, 6, 7, 8, 9]
        assert all(m.leader_epoch() == 0 for m in got)
        c.close()
        assert requests_of("OffsetForLeaderEpoch") >= 1
    finally:
        assert b.stop() == 0
