#!/usr/bin/env bash
# Compat suite entry point: runs external Kafka clients (confluent-kafka, kafka-python, kcat,
# kafkajs, @platformatic/kafka) and the Prometheus tools against the release broker binary.
# Usage: compat-tests/run.sh [pytest args...]
# Env: SLUICE_BIN (default target/release/sluice), SLUICE_VENV (default ~/.cache/sluice/compat-venv).
# Fails on any failure, on skipped tests, and when no test ran (pytest exit 5).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
export SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sluice}"
export SLUICE_VENV="${SLUICE_VENV:-$HOME/.cache/sluice/compat-venv}"
if [[ ! -x "$SLUICE_BIN" ]]; then
  echo "compat-tests: broker binary $SLUICE_BIN not found; run: cargo build --release -p sluice" >&2
  exit 1
fi
command -v kcat >/dev/null || { echo "compat-tests: kcat missing (apt-get install kcat)" >&2; exit 1; }
"$here/setup-venv.sh"
cd "$here"
set +e
"$SLUICE_VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "compat-tests: pytest collected no tests — treating as failure" >&2
  exit 1
fi
exit $rc
