#!/usr/bin/env bash
# Creates (or reuses) the Python venv for the compat suite and installs requirements.txt into it.
# Idempotent: skips pip when the requirements file has not changed since the last install.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SLUICE_VENV:-$HOME/.cache/sluice/compat-venv}"
req="$here/requirements.txt"
if ! "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
  rm -rf "$venv"  # missing, or its interpreter is gone
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" - <<'PY'
import confluent_kafka, kafka, pytest
print("confluent-kafka", confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0],
      "| kafka-python", kafka.__version__, "| pytest", pytest.__version__)
PY
