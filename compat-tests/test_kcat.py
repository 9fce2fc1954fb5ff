"""kcat from Debian (librdkafka 2.0.2, an old client that misparses ApiVersions v3 tagged fields
when a broker sends them at default values) against the release `sluice` binary: `-L` metadata
(text and `-J` JSON), produce with `-z` per codec, and consume back with `-C -e`, comparing the
exact formatted output (keys, values, headers, offsets)."""

import json
import shutil
import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.fixture(scope="module", autouse=True)
def _need_kcat():
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); .ci/run installs it", pytrace=False)


def kcat(b, *args, stdin=None, timeout=60):
    cmd = [KCAT, "-b", b.bootstrap, "-X", "broker.address.family=v4", *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\nstdout:{r.stdout!r}\nstderr:{r.stderr.decode(errors='replace')}"
    return r.stdout.decode()


def create(b, name, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)[name].result(timeout=30)


def test_kcat_version_is_old_librdkafka():
    out = subprocess.run([KCAT, "-V"], capture_output=True, text=True).stdout
    print(f"check: kcat uses an old librdkafka: {out.strip().splitlines()[-1]}")
    assert "librdkafka" in out


def test_list_metadata_text(broker, topic):
    create(broker, topic, 2)
    out = kcat(broker, "-L")
    print("check: kcat -L lists 1 broker (id 1, controller) and the topic with 2 partitions led by 1")
    assert " 1 brokers:" in out, out
    assert f"broker 1 at 127.0.0.1:{broker.port}" in out, out
    assert f'topic "{topic}" with 2 partitions:' in out, out
    assert "partition 0, leader 1, replicas: 1, isrs: 1" in out, out
    assert "partition 1, leader 1, replicas: 1, isrs: 1" in out, out


def test_list_metadata_json(broker, topic):
    create(broker, topic, 3)
    md = json.loads(kcat(broker, "-L", "-J"))
    print("check: kcat -L -J: brokers [1 @ port], controller 1, topic with partitions 0..2, leader 1, no errors")
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    assert md["controllerid"] == 1
    t = [t for t in md["topics"] if t["topic"] == topic]
    assert len(t) == 1 and "error" not in t[0], t
    parts = sorted(t[0]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == 1 and p["replicas"] == [{"id": 1}] and p["isrs"] == [{"id": 1}]
        assert "error" not in p


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_per_codec(broker, topic, codec):
    create(broker, topic, 1)
    lines = [f"key{i}:value-{i}-{'w' * (i % 30)}" for i in range(100)]
    print(f"check: kcat -P -z {codec} with 100 keyed records and a header; kcat -C -e prints them back exactly")
    kcat(broker, "-P", "-t", topic, "-p", "0", "-z", codec, "-K", ":", "-H", "src=kcat",
         "-X", "linger.ms=20", stdin=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%k|%s|%h|%o\n")
    want = [f"{ln.split(':', 1)[0]}|{ln.split(':', 1)[1]}|src=kcat|{i}" for i, ln in enumerate(lines)]
    assert out.splitlines() == want


def test_produce_auto_creates_topic(broker, topic):
    print("check: kcat -P to an unknown topic auto-creates it; -C -e reads the 3 values back")
    kcat(broker, "-P", "-t", topic, "-p", "0", stdin=b"a\nb\nc\n")
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p/%o=%s\n")
    assert out.splitlines() == ["0/0=a", "0/1=b", "0/2=c"]
