"""Observability against the release `sluice` binary, with the real Prometheus tools.

- The health endpoints answer, and a `/metrics` scrape taken while a confluent-kafka producer is
  running passes `promtool check metrics` (format and naming lint).
- A real `prometheus` server (loopback only, temp config and TSDB) scrapes the broker every second
  while confluent-kafka produces and consumes; then EVERY PromQL expression in
  grafana/sluice-dashboard.json (panels and template variables) is run through Prometheus's HTTP
  API and must succeed and return data — so no dashboard panel is empty or broken.

Needs `promtool` and `prometheus` on PATH (Debian package `prometheus`); missing tools fail the test.
"""

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, free_port

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "grafana" / "sluice-dashboard.json"
# What Grafana would put in place of the dashboard's variables.
SUBSTITUTIONS = {"$__rate_interval": "30s", "$instance": ".*", "$topic": ".*", "$api": ".*"}


def http_get(url, timeout=5):
    """(status, body) of a GET; HTTP error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError) as e:
        return 0, str(e)


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install the Debian package `prometheus` (apt-get install prometheus)",
                    pytrace=False)
    return path


@pytest.fixture
def mbroker(tmp_path, request):
    """A broker with its metrics listener on a free loopback port."""
    port = free_port()
    b = Broker(tmp_path / "data", tmp_path / "broker.log", {"metrics.listener": f"127.0.0.1:{port}"}).start()
    b.metrics_url = f"http://127.0.0.1:{port}"
    # The Kafka port accepts TCP connections once bound, before startup finishes (e.g. creating
    # __consumer_offsets); readiness is what says the broker is up.
    deadline = time.time() + 30
    while http_get(b.metrics_url + "/health/ready", timeout=1)[0] != 200:
        assert time.time() < deadline, f"/health/ready not 200 after 30 s\n{b.log()}"
        time.sleep(0.05)
    yield b
    code = b.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        print(f"--- broker log ---\n{b.log()}")
    assert code == 0, f"sluice exited with {code} on SIGTERM\n{b.log()}"


def create(b, name, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4"})
    a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)[name].result(timeout=30)
    return a


class BackgroundProducer:
    """Produces to `topic` until stopped; counts delivered records."""

    def __init__(self, b, topic):
        self.p = Producer({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4", "acks": "all",
                           "enable.idempotence": False, "linger.ms": 5, "message.timeout.ms": 20000})
        self.topic, self.delivered, self.errors = topic, 0, []
        self.stop_flag = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def cb(self, err, _msg):
        if err:
            self.errors.append(err)
        else:
            self.delivered += 1

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            try:
                self.p.produce(self.topic, key=f"k{i}".encode(), value=f"v{i}".encode() * 10, on_delivery=self.cb)
                i += 1
            except BufferError:
                pass
            self.p.poll(0.001 if i % 50 else 0.01)
        assert self.p.flush(30) == 0

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.t.join(timeout=40)
        assert not self.errors, f"delivery errors: {self.errors[:3]}"


def consume(b, topic, partitions, expected, timeout=30):
    c = Consumer({"bootstrap.servers": b.bootstrap, "broker.address.family": "v4", "group.id": "prom",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    n, eof, deadline = 0, set(), time.time() + timeout
    try:
        while len(eof) < partitions:
            assert time.time() < deadline, f"consumed {n}/{expected} before timeout"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            eof.discard(m.partition())
            n += 1
    finally:
        c.close()
    assert n == expected


def dashboard_queries():
    """Every PromQL expression in the dashboard, with Grafana's variables substituted; template
    variables' `label_values(selector, label)` become the selector they read."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append((p["title"], t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
            assert m, f"variable {v['name']}: unexpected query {v['definition']}"
            exprs.append((f"variable {v['name']}", m.group(1)))
    out = []
    for title, e in exprs:
        for k, val in SUBSTITUTIONS.items():
            e = e.replace(k, val)
        assert "$" not in e, f"{title}: unsubstituted variable in {e}"
        out.append((title, e))
    return out


def test_health_and_promtool_lint(mbroker, topic, tmp_path):
    promtool = need("promtool")
    print("check: /health/live and /health/ready answer 200, unknown paths 404")
    assert http_get(mbroker.metrics_url + "/health/live") == (200, "ok\n")
    assert http_get(mbroker.metrics_url + "/health/ready") == (200, "ready\n")
    assert http_get(mbroker.metrics_url + "/nope")[0] == 404
    create(mbroker, topic, 2)
    with BackgroundProducer(mbroker, topic) as p:
        deadline = time.time() + 20
        while p.delivered < 200:
            assert time.time() < deadline, "producer delivered nothing"
            time.sleep(0.05)
        status, text = http_get(mbroker.metrics_url + "/metrics")
    assert status == 200
    (tmp_path / "scrape.txt").write_text(text)
    print("check: a scrape taken under load passes `promtool check metrics`")
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout}\n{r.stderr}"
    assert f'sluice_produce_records_total{{topic="{topic}"}}' in text
    assert 'sluice_requests_total{api="Produce"}' in text


def test_every_dashboard_query_returns_data(mbroker, topic, tmp_path):
    prometheus = need("prometheus")
    queries = dashboard_queries()
    assert len(queries) >= 30, "the dashboard lost its panels?"
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: sluice\n    scrape_interval: 1s\n    static_configs:\n"
        f"      - targets: ['{mbroker.metrics_url.removeprefix('http://')}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(expr):
        status, body = http_get(f"{api}/query?" + urllib.parse.urlencode({"query": expr}))
        return status, json.loads(body) if body.startswith("{") else {"error": body}

    try:
        deadline = time.time() + 30
        while True:
            assert proc.poll() is None, "prometheus exited:\n" + (tmp_path / "prometheus.log").read_text()
            if http_get(f"http://127.0.0.1:{prom_port}/-/ready", timeout=1)[0] == 200:
                break
            assert time.time() < deadline, "prometheus not ready after 30 s"
            time.sleep(0.2)

        print("check: load: produce while consuming, plus one error (TOPIC_ALREADY_EXISTS)")
        partitions = 3
        a = create(mbroker, topic, partitions)
        with pytest.raises(KafkaException):
            a.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10)[topic].result(timeout=30)
        with BackgroundProducer(mbroker, topic) as p:
            time.sleep(3)
        consume(mbroker, topic, partitions, p.delivered)
        produced = p.delivered
        assert produced > 0

        print("check: consumer lag for a group stopped at a known offset")
        lag_group = "prom-lag-" + topic
        c = Consumer({"bootstrap.servers": mbroker.bootstrap, "broker.address.family": "v4", "group.id": lag_group,
                      "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        _, hw0 = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.close()
        assert hw0 > 1, "partition 0 got records"
        want_lag = f'sluice_consumer_group_lag{{group="{lag_group}",topic="{topic}",partition="0"}}'
        deadline = time.time() + 30
        while True:
            status, body = query(want_lag)
            res = body.get("data", {}).get("result", []) if status == 200 else []
            if res and float(res[0]["value"][1]) == hw0 - 1:
                break
            assert time.time() < deadline, f"lag never reached {hw0 - 1}: {body}"
            time.sleep(0.5)

        print(f"check: prometheus scraped the final counts ({produced} records)")
        want = f'sum(sluice_produce_records_total{{topic="{topic}"}})'
        deadline = time.time() + 30
        while True:
            status, body = query(want)
            res = body.get("data", {}).get("result", []) if status == 200 else []
            if res and float(res[0]["value"][1]) == produced:
                break
            assert time.time() < deadline, f"prometheus never saw {produced} records: {body}"
            time.sleep(0.5)
        # A few more scrapes so every rate() has at least two samples of the newest series.
        time.sleep(3)

        print(f"check: all {len(queries)} dashboard expressions succeed and return data")
        failures = []
        for title, expr in queries:
            status, body = query(expr)
            if status != 200 or body.get("status") != "success":
                failures.append(f"{title}: {expr}\n    error: {body.get('error', body)}")
            elif not body["data"]["result"]:
                failures.append(f"{title}: {expr}\n    no data")
        assert not failures, "dashboard queries failed:\n" + "\n".join(failures)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
