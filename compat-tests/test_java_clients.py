"""The Java client (Apache Kafka's kafka-clients 4.1) against the release `sluice` binary, through
the small programs in compat-tests/java (built by .ci/run with Maven; `dev.sluice.compat.Main`
lists the scenarios, each prints one JSON object).

Kafka 4.x's Java producer runs transactions v2 (KIP-890 part 2) when the broker's ApiVersions
finalize `transaction.version` >= 2, as Sluice's do by default: no AddPartitionsToTxn or
AddOffsetsToTxn, Produce v12+, TxnOffsetCommit v5 and EndTxn v5 bumping the epoch at every
transaction. The tests check the outcome (exactly the committed records, in order, for a
read_committed consumer; exactly-once consume-transform-produce) and, from the broker's
`sluice_requests_by_version_total`, that those versions were really used; then, after the Java
admin client downgrades `transaction.version` to 1 (UpdateFeatures), that the same client falls
back to transactions v1.
"""

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import Broker, free_port
from test_confluent_kafka import create

JAVA_DIR = Path(__file__).resolve().parent / "java"


@pytest.fixture(scope="session")
def java_classpath():
    """target/classes plus the kafka-clients jars, building the project when it was not built."""
    if subprocess.run(["which", "java"], capture_output=True).returncode != 0:
        pytest.fail("java not found: install a JDK 17+ (apt-get install openjdk-17-jdk-headless)", pytrace=False)
    cp_file = JAVA_DIR / "target" / "classpath.txt"
    if not cp_file.exists() or not (JAVA_DIR / "target" / "classes" / "dev").exists():
        r = subprocess.run([str(JAVA_DIR / "build.sh")], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"compat-tests/java/build.sh failed:\n{r.stdout}\n{r.stderr}"
    return f"{JAVA_DIR / 'target' / 'classes'}{os.pathsep}{cp_file.read_text().strip()}"


def java(cp, command, timeout=180, **opts):
    """Runs one scenario and returns its JSON report."""
    args = ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp, "dev.sluice.compat.Main", command]
    for k, v in opts.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{command} failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-6000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def jbroker(tmp_path, request):
    """A broker with its metrics listener on a free loopback port (for the per-version counters)."""
    port = free_port()
    b = Broker(tmp_path / "data", tmp_path / "broker.log", {"metrics.listener": f"127.0.0.1:{port}"}).start()
    b.metrics_url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(b.metrics_url.replace("/metrics", "/health/ready"), timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.time() < deadline, f"/health/ready not 200 after 30 s\n{b.log()}"
        time.sleep(0.05)
    yield b
    code = b.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- broker log ---\n{b.log()}")
    assert code == 0, f"sluice exited with {code} on SIGTERM\n{b.log()}"


def requests_by_version(b):
    """{(api, version): count} from sluice_requests_by_version_total."""
    with urllib.request.urlopen(b.metrics_url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^sluice_requests_by_version_total\{api="(\w+)",version="(\d+)"\} (\S+)$', text, re.M):
        out[(m.group(1), int(m.group(2)))] = float(m.group(3))
    return out


def count(versions, api, pred=lambda v: True):
    return sum(n for (a, v), n in versions.items() if a == api and pred(v))


FRESH_4_1 = {
    "metadata.version": [27, 27],
    "kraft.version": [1, 1],
    "transaction.version": [2, 2],
    "group.version": [1, 1],
    "eligible.leader.replicas.version": [1, 1],
}


def test_java_admin_describes_and_updates_features(jbroker, java_classpath):
    cp = java_classpath
    f = java(cp, "features", bootstrap=jbroker.bootstrap)
    assert f["finalized"] == FRESH_4_1
    assert f["supported"]["transaction.version"] == [0, 2]
    assert f["supported"]["metadata.version"] == [7, 27]
    epoch = f["epoch"]
    assert epoch >= 1

    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="transaction.version", level=3)
    assert r["error"] == "InvalidUpdateVersionException", r
    assert "only supports versions 0-2" in r["message"], r
    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="transaction.version", level=1, type="upgrade")
    assert r["error"] == "InvalidUpdateVersionException", r
    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="transaction.version", level=1, type="safe",
             validate_only="true")
    assert r["error"] is None, r
    assert java(cp, "features", bootstrap=jbroker.bootstrap)["finalized"] == FRESH_4_1, "validate only"

    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="group.version", level=0, type="unsafe")
    assert r["error"] is None, r
    f = java(cp, "features", bootstrap=jbroker.bootstrap)
    assert "group.version" not in f["finalized"]
    assert f["epoch"] > epoch
    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="group.version", level=1)
    assert r["error"] is None, r
    assert java(cp, "features", bootstrap=jbroker.bootstrap)["finalized"] == FRESH_4_1


def check_read_committed(cp, b, topic, committed):
    got = java(cp, "read-committed", bootstrap=b.bootstrap, topic=topic)["values"]
    assert got == committed, f"read_committed saw {got}, committed {committed}"


def test_java_transactions_v2_commit_and_abort(jbroker, java_classpath, topic):
    cp = java_classpath
    create(jbroker, topic, 2)
    before = requests_by_version(jbroker)
    r = java(cp, "txn-produce", bootstrap=jbroker.bootstrap, topic=topic, txn_id="java-v2-" + topic,
             transactions=6, per_txn=10, partitions=2, abort_every=3)
    assert r["aborted"] == 2
    assert sum(len(v) for v in r["committed"].values()) == 40
    check_read_committed(cp, jbroker, topic, r["committed"])

    after = requests_by_version(jbroker)
    delta = {k: n - before.get(k, 0) for k, n in after.items()}
    print(f"requests by version: { {k: n for k, n in delta.items() if n} }")
    assert count(delta, "EndTxn", lambda v: v == 5) >= 6, "every commit and abort is EndTxn v5"
    assert count(delta, "EndTxn", lambda v: v < 5) == 0
    assert count(delta, "AddPartitionsToTxn") == 0, "transactions v2 adds partitions through Produce"
    assert count(delta, "Produce", lambda v: v >= 12) > 0
    assert count(delta, "Produce", lambda v: v < 12) == 0


def test_java_consume_transform_produce_v2(jbroker, java_classpath, topic):
    cp = java_classpath
    source, sink, group = topic + "-in", topic + "-out", topic + "-g"
    create(jbroker, source, 2)
    create(jbroker, sink, 2)
    before = requests_by_version(jbroker)
    r = java(cp, "consume-transform-produce", bootstrap=jbroker.bootstrap, input=source, output=sink, group=group,
             txn_id="java-ctp-" + topic, records=200, partitions=2, abort_first="true")
    assert r["copied"] == 200 and r["aborted"] == 1, r
    assert r["committed_offsets"] == {"0": 100, "1": 100}, r
    # Exactly once, in order: the aborted first batch left nothing behind.
    expected = {str(p): [f"out-in-{k}" for k in range(200) if k % 2 == p] for p in (0, 1)}
    check_read_committed(cp, jbroker, sink, expected)

    delta = {k: n - before.get(k, 0) for k, n in requests_by_version(jbroker).items()}
    print(f"requests by version: { {k: n for k, n in delta.items() if n} }")
    assert count(delta, "TxnOffsetCommit", lambda v: v == 5) >= 2, "sendOffsetsToTransaction is TxnOffsetCommit v5"
    assert count(delta, "TxnOffsetCommit", lambda v: v < 5) == 0
    assert count(delta, "AddOffsetsToTxn") == 0, "transactions v2 adds the offsets partition through TxnOffsetCommit"
    assert count(delta, "EndTxn", lambda v: v == 5) >= 2


def test_java_falls_back_to_transactions_v1_at_transaction_version_1(jbroker, java_classpath, topic):
    cp = java_classpath
    create(jbroker, topic, 1)
    r = java(cp, "update-feature", bootstrap=jbroker.bootstrap, feature="transaction.version", level=1, type="safe")
    assert r["error"] is None, r
    assert java(cp, "features", bootstrap=jbroker.bootstrap)["finalized"]["transaction.version"] == [1, 1]
    before = requests_by_version(jbroker)
    r = java(cp, "txn-produce", bootstrap=jbroker.bootstrap, topic=topic, txn_id="java-v1-" + topic,
             transactions=4, per_txn=5, abort_every=2)
    check_read_committed(cp, jbroker, topic, r["committed"])
    delta = {k: n - before.get(k, 0) for k, n in requests_by_version(jbroker).items()}
    print(f"requests by version: { {k: n for k, n in delta.items() if n} }")
    assert count(delta, "EndTxn", lambda v: v == 5) == 0
    assert count(delta, "EndTxn", lambda v: v < 5) >= 4
    assert count(delta, "AddPartitionsToTxn") > 0
    assert count(delta, "Produce", lambda v: v >= 12) == 0
