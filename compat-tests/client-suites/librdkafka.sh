#!/usr/bin/env bash
# Runs librdkafka's own regression suite (its tests/ test-runner: every test that needs a broker,
# in quick mode) against the release `sluice` binary, twice: with the classic group protocol and
# with the consumer group protocol (KIP-848, librdkafka's TEST_CONSUMER_GROUP_PROTOCOL).
#
# librdkafka comes from the `rdkafka-sys` crate in Cargo.lock (the librdkafka our Rust tests and
# the `rdkafka` crate link), built once without TLS/SASL into ~/.cache/sluice/client-suites.
# Tests listed in librdkafka/deselect.txt are printed as NOT RUN with the reason, never counted.
#
# Usage: compat-tests/client-suites/librdkafka.sh
# Env: SLUICE_BIN as for compat-tests/run.sh; SLUICE_SUITE_LOGS keeps each run's full output.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sluice}"
cache="${SLUICE_CLIENT_SUITES:-$HOME/.cache/sluice/client-suites}"
version="$(awk '/^name = "rdkafka-sys"$/ { getline; sub(/^version = "/, ""); sub(/"$/, ""); print; exit }' "$repo/Cargo.lock")"
src="$cache/librdkafka-${version#*+}"

if [[ ! -f "$src/.complete" ]]; then
  (cd "$repo" && cargo fetch -q)
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/rdkafka-sys-"$version".crate | head -n1)"
  rm -rf "$src" "$cache/rdkafka-sys-$version" && mkdir -p "$cache"
  tar -xzf "$crate" -C "$cache" "rdkafka-sys-$version/librdkafka"
  mv "$cache/rdkafka-sys-$version/librdkafka" "$src" && rm -rf "$cache/rdkafka-sys-$version"
  (cd "$src" && ./configure --disable-ssl --disable-sasl --disable-gssapi --disable-curl \
    >/dev/null && make -j"$(nproc)" libs >/dev/null && make -C tests -j"$(nproc)" build >/dev/null)
  touch "$src/.complete"
fi

source "$here/lib.sh"
work="$(mktemp -d)"
port="$(free_port)"
printf '%s\n' "listeners=PLAINTEXT://127.0.0.1:$port" "log.dirs=$work/data" "metrics.listener=none" \
  "num.partitions=4" "group.initial.rebalance.delay.ms=0" >"$work/server.properties"
start_broker "$port"
echo "bootstrap.servers=127.0.0.1:$port" >"$src/tests/test.conf"

read_deselected "$here/librdkafka/deselect.txt" librdkafka
logs="${SLUICE_SUITE_LOGS:-$work}"
mkdir -p "$logs"

failed=0
for protocol in classic consumer; do
  out="$logs/librdkafka-$protocol.log"
  echo "== librdkafka suite (group.protocol=$protocol)"
  # -Q quick mode, -L only tests that need a broker, -K without librdkafka's known issues,
  # -E without the socket-emulation (sockem) tests, two at a time.
  (cd "$src/tests" && TEST_KAFKA_VERSION=4.1.0 TEST_CONSUMER_GROUP_PROTOCOL="$protocol" \
    TESTS_SKIP="$(IFS=,; echo "${DESELECTED[*]}")" LD_LIBRARY_PATH=../src:../src-cpp \
    timeout -k 10 1800 ./test-runner -Q -L -K -E -p2 >"$out" 2>&1) || failed=1
  # The summary table: one row per test with PASSED / FAILED / SKIPPED.
  sed -n '/SUMMARY$/,$p' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -aE '^\|' || true
  grep -aq 'ALL TESTS PASSED' "$out" || failed=1
done
if ((failed)); then
  echo "librdkafka suite: failed; broker log tail:"
  tail -n 40 "$work/broker.log"
  exit 1
fi
