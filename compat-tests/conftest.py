"""Fixtures for the compat suite: each test gets its own release `sluice` broker process on a free
port with a temporary `log.dirs` (via --override), and the suite refuses to pass on skipped tests.

Why: external clients (confluent-kafka / current librdkafka, kafka-python, Debian's old kcat) are
what users run; they must work against the binary we ship, started the way users start it.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SLUICE_BIN = os.environ.get("SLUICE_BIN", str(REPO / "target" / "release" / "sluice"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A running `sluice` process."""

    def __init__(self, data_dir: Path, log_path: Path, overrides=None, node_id=1):
        self.data_dir = data_dir
        self.log_path = log_path
        self.overrides = dict(overrides or {})
        self.node_id = node_id
        self.proc = None
        self.port = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.port = free_port()
        args = [SLUICE_BIN,
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={self.data_dir}",
                "--override", f"node.id={self.node_id}"]
        if "metrics.listener" not in self.overrides:
            # Tests run brokers one after another (and next to a developer's own broker): never
            # fight over the default metrics port.
            args += ["--override", "metrics.listener=127.0.0.1:0"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode} during startup:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"sluice not listening on {self.port} after 30 s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM; returns the exit code (killing after 20 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("sluice did not exit within 20 s of SIGTERM")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-20000:]
        except OSError:
            return ""


@pytest.fixture(scope="session", autouse=True)
def _check_binary():
    if not os.access(SLUICE_BIN, os.X_OK):
        pytest.fail(f"broker binary {SLUICE_BIN} missing: build it with `cargo build --release` "
                    f"or set SLUICE_BIN", pytrace=False)


@pytest.fixture
def broker(tmp_path, request):
    """A fresh broker; extra overrides via @pytest.mark.broker_overrides({...})."""
    marker = request.node.get_closest_marker("broker_overrides")
    overrides = marker.args[0] if marker else {}
    b = Broker(tmp_path / "data", tmp_path / "broker.log", overrides).start()
    yield b
    code = b.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(f"--- broker log ({b.log_path}) ---\n{b.log()}")
    assert code == 0, f"sluice exited with {code} on SIGTERM\n{b.log()}"


@pytest.fixture
def topic():
    return "t-" + uuid.uuid4().hex[:12]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_configure(config):
    config.addinivalue_line("markers", "broker_overrides(dict): extra --override key=value for the broker")


def pytest_sessionfinish(session, exitstatus):
    # A skipped compat test is a test that did not run: fail the session instead of passing.
    if _skipped and session.exitstatus == 0:
        print(f"\nERROR: {len(_skipped)} test(s) skipped; skips are failures here: {_skipped}")
        session.exitstatus = 1
    if session.testscollected == 0:
        session.exitstatus = 5


def have(cmd):
    return shutil.which(cmd) is not None
