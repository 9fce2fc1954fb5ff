"""Transactions from Python clients against the release `sluice` binary: confluent-kafka
(librdkafka) commits and aborts, read_committed vs read_uncommitted consumers, and a
consume-transform-produce loop with send_offsets_to_transaction; kafka-python's own
transactional producer (its TransactionManager speaks the protocol independently of
librdkafka); kafkajs transactions with sendOffsets, then DescribeTransactions, ListTransactions and
DescribeProducers through @platformatic/kafka; ListOffsets at both isolation levels."""

import json
import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from test_confluent_kafka import create


def txn_producer(b, tid):
    p = Producer({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4",
                  "transactional.id": tid, "linger.ms": 5})
    p.init_transactions(30)
    return p


def read(b, topic, partitions, level, group="compat-txn"):
    c = Consumer({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4", "group.id": group,
                  "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest",
                  "isolation.level": level})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, eof = [], set()
    deadline = time.time() + 30
    while len(eof) < len(partitions):
        assert time.time() < deadline, f"no EOF on {topic}; got {len(out)} records"
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
                continue
            raise AssertionError(m.error())
        out.append(m.value().decode())
    c.close()
    return out


def send(p, topic, values, partition=0):
    for v in values:
        p.produce(topic, value=v.encode(), partition=partition)
    p.flush(30)


def test_confluent_kafka_commit_and_abort(broker, topic):
    create(broker, topic, 2)
    p = txn_producer(broker, "py-txn-" + topic)
    p.begin_transaction()
    send(p, topic, [f"c-{i}" for i in range(10)], 0)
    send(p, topic, [f"c1-{i}" for i in range(10)], 1)
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, topic, [f"a-{i}" for i in range(7)], 0)
    p.abort_transaction(30)
    assert read(broker, topic, [0], "read_committed") == [f"c-{i}" for i in range(10)]
    assert read(broker, topic, [1], "read_committed") == [f"c1-{i}" for i in range(10)]
    assert len(read(broker, topic, [0], "read_uncommitted")) == 17


def test_confluent_kafka_consume_transform_produce(broker, topic):
    out = topic + "-out"
    create(broker, topic, 1)
    create(broker, out, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})
    send(plain, topic, [f"in-{i}" for i in range(6)])
    group = "ctp-" + topic
    c = Consumer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4", "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < 6:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m)
    p = txn_producer(broker, "py-ctp-" + topic)
    p.begin_transaction()
    send(p, out, [m.value().decode().upper() for m in got])
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 6)], c.consumer_group_metadata(), 30)
    p.commit_transaction(30)
    committed = c.committed([TopicPartition(topic, 0)], timeout=30)
    assert committed[0].offset == 6
    assert read(broker, out, [0], "read_committed") == [f"IN-{i}" for i in range(6)]
    c.close()


def test_kafka_python_transactional_producer(broker, topic):
    create(broker, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-txn-" + topic)
    p.init_transactions()
    p.begin_transaction()
    for i in range(5):
        p.send(topic, value=f"kp-{i}".encode(), partition=0)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(3):
        p.send(topic, value=f"kp-aborted-{i}".encode(), partition=0)
    p.flush()
    p.abort_transaction()
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                      auto_offset_reset="earliest", consumer_timeout_ms=5000, enable_auto_commit=False)
    c.assign([KafkaTopicPartition(topic, 0)])
    c.seek_to_beginning()
    values = [m.value.decode() for m in c]
    c.close()
    assert values == [f"kp-{i}" for i in range(5)]
    assert read(broker, topic, [0], "read_uncommitted") == [f"kp-{i}" for i in range(5)] + \
        [f"kp-aborted-{i}" for i in range(3)]


def test_list_offsets_latest_is_the_last_stable_offset_for_read_committed(broker, topic):
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import AdminClient, OffsetSpec
    create(broker, topic, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})
    send(plain, topic, ["a", "b"])
    p = txn_producer(broker, "py-lso-" + topic)
    p.begin_transaction()
    send(p, topic, ["open-1", "open-2", "open-3"])
    a = AdminClient({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})

    def latest(level):
        tp = TopicPartition(topic, 0)
        fs = a.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level, request_timeout=30)
        return fs[tp].result(timeout=30).offset

    assert latest(IsolationLevel.READ_UNCOMMITTED) == 5
    assert latest(IsolationLevel.READ_COMMITTED) == 2, "held at the open transaction's first offset"
    p.commit_transaction(30)
    assert latest(IsolationLevel.READ_COMMITTED) == 6, "past the COMMIT marker"


@pytest.mark.broker_overrides({"group.initial.rebalance.delay.ms": "0"})
def test_kafkajs_transactions(broker, topic):
    from test_groups import JS, ensure_kafkajs
    ensure_kafkajs()
    create(broker, topic, 1)
    group = "js-ctp-" + topic
    env = dict(os.environ, BOOTSTRAP=broker.bootstrap, TOPIC=topic, GROUP=group)
    out = subprocess.run(["node", str(JS / "transactions.js")], cwd=JS, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "COMMITTED 5" in lines, lines
    values = [line[len("VALUE "):] for line in lines if line.startswith("VALUE ")]
    assert values == [f"js-{i}" for i in range(5)] + ["js-ctp"], "read_committed: the aborted records are skipped"
    assert lines[-1] == "DONE"
    assert read(broker, topic, [0], "read_uncommitted") == [f"js-{i}" for i in range(5)] + \
        [f"js-aborted-{i}" for i in range(3)] + ["js-ctp"]

    # The transaction admin APIs, through @platformatic/kafka's protocol code.
    out = subprocess.run(["node", str(JS / "txn_admin.mjs")], cwd=JS, capture_output=True, text=True, timeout=60,
                         env=dict(env, TXN_ID=f"kafkajs-{topic}"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    states = res["described"]["transactionStates"]
    assert states[0]["transactionalId"] == f"kafkajs-{topic}" and states[0]["errorCode"] == 0, states
    assert states[0]["transactionState"] == "CompleteCommit", states
    assert "transactionalId could not be found" in res["missing"], res["missing"]
    listed = res["listed"]["transactionStates"]
    assert f"kafkajs-{topic}" in [t["transactionalId"] for t in listed], listed
    assert all(t["transactionState"] == "CompleteCommit" for t in listed), listed
    part = res["producers"]["topics"][0]["partitions"][0]
    assert part["errorCode"] == 0 and len(part["activeProducers"]) == 1, part
    assert part["activeProducers"][0]["producerId"] == states[0]["producerId"], (part, states)
    assert part["activeProducers"][0]["currentTxnStartOffset"] == -1, "no transaction open"
