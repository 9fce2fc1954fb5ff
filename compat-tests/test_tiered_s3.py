"""Tiered storage (KIP-405) against a real S3 API: moto_server on 127.0.0.1, started by the test.

A topic with remote.storage.enable=true, 4 KiB segments and local.retention.ms=500: rolled
segments appear in the bucket under deterministic keys, local segment files go away, and a
librdkafka consumer from offset 0 reads every record in order. With the S3 server stopped, produce
and local consume keep working; when it is back, uploads catch up.

A second test: offsets_for_times below the local log start is answered from the remote time
indexes; DeleteRecords below the local log start deletes the objects of the segments wholly below
it and moves the low watermark; deleting the topic deletes every object it had in the bucket.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port

BUCKET = "sluice-tiered"
PREFIX = "cluster-a"


def moto_binary():
    return shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")


def start_moto(port):
    proc = subprocess.Popen([moto_binary(), "-H", "127.0.0.1", "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)


def stop_moto(proc):
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def s3_client(endpoint):
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    return s3


def object_keys(s3):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def local_logs(data_dir, topic):
    d = Path(data_dir) / f"{topic}-0"
    return sorted(p.name for p in d.glob("*.log"))


def wait_for(what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def produce(bootstrap, topic, start, count):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for chunk in range(start, start + count, 20):
        for i in range(chunk, min(chunk + 20, start + count)):
            p.produce(topic, value=f"record-{i:05}-{'x' * 100}".encode(), partition=0)
        # One flush per chunk: separate batches, so 4 KiB segments roll.
        assert p.flush(30) == 0


def consume(bootstrap, topic, start, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tiered-" + topic,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, start)])
    got = []
    deadline = time.time() + 60
    while len(got) < count and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or (m.error() and m.error().code() == -191):  # _PARTITION_EOF
            continue
        assert not m.error(), m.error()
        got.append((m.offset(), m.value().decode()))
    c.close()
    return got


class TieredS3:
    """A moto S3 server, a broker tiering to it, and a tiered topic with small segments."""

    def __init__(self, port, moto, s3, broker, admin):
        self.port, self.moto, self.s3, self.broker, self.admin = port, moto, s3, broker, admin


@pytest.fixture
def tiered_s3(tmp_path, monkeypatch, topic):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = TieredS3(port, start_moto(port), None, None, None)
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}.items():
            monkeypatch.setenv(k, v)
        env.s3 = s3_client(endpoint)
        env.s3.create_bucket(Bucket=BUCKET)
        env.broker = Broker(tmp_path / "data", tmp_path / "broker.log", {
            "remote.log.storage.system.enable": "true",
            "remote.log.storage.url": f"s3://{BUCKET}/{PREFIX}",
            "remote.log.manager.task.interval.ms": "200",
            "log.retention.check.interval.ms": "200",
        }).start()
        env.admin = AdminClient({"bootstrap.servers": env.broker.bootstrap})
        fs = env.admin.create_topics([NewTopic(topic, 1, 1, config={
            "remote.storage.enable": "true", "segment.bytes": "4096",
            "local.retention.ms": "500", "file.delete.delay.ms": "0"})])
        fs[topic].result(30)
        yield env
    finally:
        if env.broker is not None:
            code = env.broker.stop()
            assert code == 0, env.broker.log()
        stop_moto(env.moto)


def test_tiered_topic_on_s3(tiered_s3, topic):
    env = tiered_s3
    port, moto, s3, broker = env.port, env.moto, env.s3, env.broker

    produce(broker.bootstrap, topic, 0, 300)
    wait_for("segments in the bucket", lambda: any(k.endswith(".log") for k in object_keys(s3)))
    keys = object_keys(s3)
    logs = [k for k in keys if k.endswith(".log")]
    # <prefix>/<topic id>/<partition>/<20-digit base offset>-<uuid>.log, with its indexes.
    first = sorted(logs)[0]
    assert first.startswith(PREFIX + "/") and "/0/00000000000000000000-" in first, first
    for ext in (".index", ".timeindex", ".json"):
        assert first[:-4] + ext in keys, (ext, keys)
    wait_for("local segments deleted", lambda: len(local_logs(broker.data_dir, topic)) <= 2)
    assert "00000000000000000000.log" not in local_logs(broker.data_dir, topic)

    got = consume(broker.bootstrap, topic, OFFSET_BEGINNING, 300)
    assert [o for o, _ in got] == list(range(300))
    assert all(v.startswith(f"record-{o:05}-") for o, v in got)

    # The store goes away: produce and local consume keep working.
    stop_moto(moto)
    produce(broker.bootstrap, topic, 300, 200)
    tail = consume(broker.bootstrap, topic, 300, 200)
    assert [o for o, _ in tail] == list(range(300, 500))
    uploaded_before = {k for k in object_keys_safe(s3)}

    # It comes back (empty, as moto keeps no state): uploads catch up.
    moto = env.moto = start_moto(port)  # the fixture stops it
    s3.create_bucket(Bucket=BUCKET)
    wait_for("uploads catching up", lambda: any(
        k.endswith(".log") and int(k.rsplit("/", 1)[1].split("-")[0]) >= 300 for k in object_keys(s3)))
    assert not uploaded_before


def object_keys_safe(s3):
    try:
        return object_keys(s3)
    except Exception:  # the server is down
        return []


def test_time_lookup_delete_records_and_topic_deletion_on_s3(tiered_s3, topic):
    s3, broker, admin = tiered_s3.s3, tiered_s3.broker, tiered_s3.admin

    # Record i has timestamp t0 + 10 * i (recent: retention.ms must not delete them).
    t0 = int(time.time() * 1000) - 60_000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for chunk in range(0, 300, 20):
        for i in range(chunk, chunk + 20):
            p.produce(topic, value=f"record-{i:05}-{'x' * 100}".encode(), partition=0, timestamp=t0 + 10 * i)
        assert p.flush(30) == 0
    wait_for("local segments deleted", lambda: len(local_logs(broker.data_dir, topic)) <= 2)
    local_start = int(local_logs(broker.data_dir, topic)[0][:20])
    assert local_start > 100, local_start

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "tiered-" + topic})
    for ts, want in [(t0, 0), (t0 + 10 * 37, 37), (t0 + 10 * 37 - 5, 37), (t0 + 10 * 299, 299)]:
        got = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
        assert got.error is None and got.offset == want, (ts, got)

    keys = object_keys(s3)
    topic_id = sorted(k for k in keys if k.endswith(".log"))[0].split("/")[1]
    bases = sorted(int(k.rsplit("/", 1)[1][:20]) for k in keys if k.endswith(".log"))
    target = bases[3] + 2
    assert target < local_start
    res = admin.delete_records([TopicPartition(topic, 0, target)])
    low = list(res.values())[0].result(30)
    assert low.low_watermark == target, low
    wait_for("remote segments below the new start deleted", lambda: sorted(
        int(k.rsplit("/", 1)[1][:20]) for k in object_keys(s3) if k.endswith(".log"))[0] == bases[3])
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0] == target
    c.close()

    admin.delete_topics([topic])[topic].result(30)
    wait_for("the deleted topic's objects gone", lambda: not [k for k in object_keys(s3) if f"/{topic_id}/" in k])
    pending = Path(broker.data_dir) / "remote-log-pending-deletions.json"
    wait_for("pending deletion record dropped", lambda: topic_id not in pending.read_text())
