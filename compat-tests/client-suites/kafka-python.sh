#!/usr/bin/env bash
# Runs kafka-python's own integration suite (producer, consumer, admin) against the release
# `sluice` binary: the tests kafka-python's maintainers run against Apache Kafka, unmodified.
#
# The suite comes from the source distribution of the kafka-python version installed in the
# compat venv (cached under ~/.cache/sluice/client-suites). Sluice starts with the settings
# kafka-python's fixture gives Kafka (kafka-python/server.properties) and two log dirs; the
# fixture then treats it as an external broker (KAFKA_URI). Tests listed in
# kafka-python/deselect.txt are printed as NOT RUN, with the reason, and never counted. One client
# race is worked around by a pytest plugin (kafka-python/subscription_race.py).
#
# Usage: compat-tests/client-suites/kafka-python.sh [JUNIT_XML] [pytest args...]
# Env: SLUICE_BIN, SLUICE_VENV as for compat-tests/run.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sluice}"
export SLUICE_VENV="${SLUICE_VENV:-$HOME/.cache/sluice/compat-venv}"
junit="${1:-}"
(($# > 0)) && shift
py="$SLUICE_VENV/bin/python"
"$repo/compat-tests/setup-venv.sh" >/dev/null
version="$("$py" -c 'import kafka; print(kafka.__version__)')"

# The suite's sources: kafka-python's sdist of exactly the installed version.
suite="${SLUICE_CLIENT_SUITES:-$HOME/.cache/sluice/client-suites}/kafka-python-$version"
if [[ ! -f "$suite/.complete" ]]; then
  rm -rf "$suite" && mkdir -p "$suite"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$suite/dist" "kafka-python==$version"
  tar -xzf "$suite"/dist/kafka_python-"$version".tar.gz -C "$suite" --strip-components=1
  touch "$suite/.complete"
fi
cp "$here/kafka-python/service.py" "$suite/test/service.py"
cp "$here/kafka-python/subscription_race.py" "$suite/sluice_subscription_race.py"
touch "$suite/test/__init__.py"

source "$here/lib.sh"
work="$(mktemp -d)"
port="$(free_port)"
{
  cat "$here/kafka-python/server.properties"
  echo "listeners=PLAINTEXT://127.0.0.1:$port"
  echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
  echo "log.dirs=$work/logs-a,$work/logs-b"
  echo "metrics.listener=none"
} >"$work/server.properties"
start_broker "$port"

read_deselected "$here/kafka-python/deselect.txt" kafka-python
deselect=()
for id in "${DESELECTED[@]}"; do deselect+=(--deselect "$id"); done

# The one change to the client: a plugin that closes a subscription race in kafka-python's
# metadata code (see kafka-python/subscription_race.py).
args=(-q -p no:cacheprovider -p sluice_subscription_race -W ignore --timeout=180 -o junit_suite_name=kafka-python-suite)
[[ -n $junit ]] && args+=(--junitxml="$junit")
set +e
(cd "$suite" && KAFKA_VERSION=4.1.0 KAFKA_ROOT="$suite" KAFKA_URI="PLAINTEXT://127.0.0.1:$port" \
  PYTHONPATH="$suite" "$py" -m pytest "${args[@]}" "${deselect[@]}" \
  test/integration/test_producer_integration.py test/integration/test_consumer_integration.py \
  test/integration/test_admin_integration.py "$@")
rc=$?
set -e
if ((rc != 0)); then
  echo "kafka-python suite: failed (pytest exit $rc); broker log tail:"
  tail -n 40 "$work/broker.log"
fi
exit $rc
