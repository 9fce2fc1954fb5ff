"""Consumer groups with the clients people run: a kafka-python consumer and a kafkajs consumer
share one group and commit; the admin clients of confluent-kafka (current librdkafka) and
kafka-python list, describe and delete groups and list, alter and delete committed offsets.

Why: group coordination is where brokers diverge from Kafka most visibly (rebalances that never
settle, offsets that are not where the admin tools say). These are the users' own tools.
"""

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaAdminClient
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.structs import TopicPartition as KPTopicPartition

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "4"}


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(timeout=15)


def produce(bootstrap, topic, values_by_partition):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for part, values in values_by_partition.items():
        for v in values:
            p.produce(topic, v.encode(), partition=part)
    assert p.flush(30) == 0


def ensure_kafkajs():
    if not (JS / "node_modules" / "kafkajs").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)


@pytest.mark.broker_overrides(FAST_GROUPS)
@pytest.mark.timeout(180)
def test_kafka_python_and_kafkajs_share_a_group(broker, topic):
    ensure_kafkajs()
    create(broker.bootstrap, topic, 4)
    group = "mixed-" + topic
    expected = {f"v-{p}-{i}" for p in range(4) for i in range(25)}

    node = subprocess.Popen(["node", str(JS / "group_consumer.js")], cwd=JS, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BOOTSTRAP": broker.bootstrap, "TOPIC": topic, "GROUP": group})
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip("\n")) for l in node.stdout], daemon=True).start()
    js_values, js_assignments = [], []

    def drain(timeout=0.05):
        try:
            while True:
                line = lines.get(timeout=timeout)
                if line.startswith("MSG "):
                    js_values.append(line.split(" ", 3)[3])
                elif line.startswith("JOINED "):
                    js_assignments.append(json.loads(line[len("JOINED "):]))
                timeout = 0.0
        except queue.Empty:
            pass

    try:
        deadline = time.time() + 60
        while not js_assignments and time.time() < deadline:
            drain(0.2)
        assert js_assignments, "kafkajs never joined the group"
        assert sum(len(v) for v in js_assignments[-1].get(topic, {}) and [js_assignments[-1][topic]]) == 4

        kp = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
                           enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=500,
                           partition_assignment_strategy=[RoundRobinPartitionAssignor],
                           consumer_timeout_ms=200)
        py_values = []
        # Wait until the group settled with both members: kafkajs rejoined with fewer partitions
        # and kafka-python got the rest.
        deadline = time.time() + 60
        while time.time() < deadline:
            for m in kp:
                py_values.append(m.value.decode())
                kp.commit()
            drain()
            js_parts = len(js_assignments[-1].get(topic, [])) if js_assignments else 0
            py_parts = len(kp.assignment())
            if js_parts and py_parts and js_parts + py_parts == 4 and len(js_assignments) >= 2:
                break
        else:
            pytest.fail(f"group never settled: kafkajs {js_assignments[-1:]}, kafka-python {kp.assignment()}")
        print("settled: kafkajs", js_assignments[-1], "kafka-python", sorted(tp.partition for tp in kp.assignment()))

        produce(broker.bootstrap, topic, {p: [f"v-{p}-{i}" for i in range(25)] for p in range(4)})
        deadline = time.time() + 60
        while time.time() < deadline and set(py_values) | set(js_values) != expected:
            for m in kp:
                py_values.append(m.value.decode())
                kp.commit()
            drain()
        got = set(py_values) | set(js_values)
        assert got == expected, f"missing {sorted(expected - got)[:10]}"
        assert py_values and js_values, "both clients consumed part of the topic"
        assert len(py_values) == len(set(py_values)), "kafka-python saw a record twice"
        kp.close()
    finally:
        node.terminate()
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
        drain()

    # Every partition's committed offset is at its end (25 records each).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(4)])]
    res = admin.list_consumer_group_offsets(req)[group].result(timeout=15)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(p, 25) for p in range(4)]


@pytest.mark.broker_overrides(FAST_GROUPS)
def test_admin_clients_manage_groups_and_offsets(broker, topic):
    create(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, {0: [f"a{i}" for i in range(5)], 1: [f"b{i}" for i in range(5)]})
    group = "admin-" + topic
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < 10 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
            c.commit(message=m, asynchronous=False)
    assert sorted(got) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=15)
    assert desc.group_id == group
    assert str(desc.state).endswith("STABLE"), desc.state
    assert len(desc.members) == 1
    assert sorted(tp.partition for tp in desc.members[0].assignment.topic_partitions) == [0, 1]
    c.close()

    listed = admin.list_consumer_groups().result(timeout=15)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert group in states and states[group].endswith("EMPTY"), states

    offsets_req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])]
    res = admin.list_consumer_group_offsets(offsets_req)[group].result(timeout=15)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(0, 5), (1, 5)]
    alter = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 2)])]
    admin.alter_consumer_group_offsets(alter)[group].result(timeout=15)
    res = admin.list_consumer_group_offsets(offsets_req)[group].result(timeout=15)
    assert sorted((tp.partition, tp.offset) for tp in res.topic_partitions) == [(0, 2), (1, 5)]

    # OffsetDelete through kafka-python's admin client.
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    kadmin.delete_group_offsets(group, [KPTopicPartition(topic, 1)])
    left = kadmin.list_group_offsets(group)[group]
    assert {tp.partition: om.offset for tp, om in left.items()} == {0: 2}
    kgroups = {g["group_id"] if isinstance(g, dict) else g[0] for g in kadmin.list_groups()}
    assert group in kgroups
    kadmin.close()

    admin.delete_consumer_groups([group])[group].result(timeout=15)
    listed = admin.list_consumer_groups().result(timeout=15)
    assert group not in {g.group_id for g in listed.valid}
    res = admin.list_consumer_group_offsets(offsets_req)[group].result(timeout=15)
    assert all(tp.offset < 0 for tp in res.topic_partitions), "offsets gone with the group"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
@pytest.mark.timeout(120)
def test_assign_consumers_commit_to_a_group_without_members(broker, topic, protocol):
    """A consumer that assign()s (no group membership) commits with metadata under either group
    protocol, as against Kafka: with `group.protocol=consumer` librdkafka sends its own member id
    and epoch -1, which Kafka accepts for a group without members. A commit for a topic that does
    not exist fails with UNKNOWN_TOPIC_OR_PARTITION for that partition, not with a member error."""
    create(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, {0: ["a", "b", "c"], 1: ["d"]})
    group = f"assigned-{protocol}-{time.time_ns()}"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": protocol,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        got = []
        deadline = time.time() + 30
        while len(got) < 4 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.partition(), m.value().decode()))
        assert sorted(got) == [(0, "a"), (0, "b"), (0, "c"), (1, "d")]

        committed = c.commit(offsets=[TopicPartition(topic, 0, 3, metadata="checkpoint-0"),
                                      TopicPartition(topic, 1, 1, metadata="checkpoint-1")],
                             asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in committed] == [(0, 3, None), (1, 1, None)]
        back = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=15)
        assert [(tp.offset, tp.metadata) for tp in back] == [(3, "checkpoint-0"), (1, "checkpoint-1")]

        with pytest.raises(KafkaException) as e:
            c.commit(offsets=[TopicPartition(f"{topic}-missing", 0, 1)], asynchronous=False)
        assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    finally:
        c.close()
