#!/usr/bin/env bash
# Runs the `rdkafka` crate's own integration tests (rust-rdkafka: producers, consumers, admin,
# metadata, transactions) against the release `sluice` binary, and its consumer tests twice: with
# the classic group protocol and with the consumer group protocol (KIP-848).
#
# The tests come from the crate version in Cargo.lock (cargo's download cache), built once into
# ~/.cache/sluice/client-suites. They assume the broker their docker-compose starts: node 0 on
# localhost:9092, 3 partitions per auto-created topic; Sluice starts that way (so port 9092 must
# be free). One change is made to the copy: `consumer_config` in tests/utils.rs sets
# `group.protocol` from SLUICE_GROUP_PROTOCOL (and drops `session.timeout.ms`, which the consumer
# protocol leaves to the broker) — rust-rdkafka has no switch of its own for it.
#
# Usage: compat-tests/client-suites/rust-rdkafka.sh
# Env: SLUICE_BIN as for compat-tests/run.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/sluice}"
cache="${SLUICE_CLIENT_SUITES:-$HOME/.cache/sluice/client-suites}"
version="$(awk '/^name = "rdkafka"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$repo/Cargo.lock")"
src="$cache/rdkafka-$version"

if [[ ! -f "$src/.complete" ]]; then
  (cd "$repo" && cargo fetch -q)
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/rdkafka-"$version".crate | head -n1)"
  rm -rf "$src" && mkdir -p "$cache"
  tar -xzf "$crate" -C "$cache"
  python3 - "$src/tests/utils.rs" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = '    config.set("auto.offset.reset", "earliest");\n'
assert anchor in text, "rdkafka's consumer_config changed; update rust-rdkafka.sh"
text = text.replace(anchor, anchor + '''    if let Ok(protocol) = env::var("SLUICE_GROUP_PROTOCOL") {
        config.set("group.protocol", &protocol);
        if protocol == "consumer" {
            config.remove("session.timeout.ms");
        }
    }
''', 1)
open(path, "w").write(text)
PY
  touch "$src/.complete"
fi
target="$cache/rdkafka-target"
(cd "$src" && CARGO_TARGET_DIR="$target" cargo test -q --locked --tests --no-run 2>&1 | grep -v "^warning\|^ *|\|^ *=\|^$" || true)
test_bin() { find "$target/debug/deps" -maxdepth 1 -type f -executable -name "$1-*" -printf '%T@ %p\n' | sort -rn | head -n1 | cut -d' ' -f2; }

source "$here/lib.sh"
work="$(mktemp -d)"
# Some tests produce records with CreateTime 1111 (1970): time retention deletes those at its
# first pass, under Kafka as here, and the consumers waiting for them would hang. The suite's
# broker runs that pass hourly instead of every 5 minutes.
printf '%s\n' "node.id=0" "num.partitions=3" "listeners=PLAINTEXT://127.0.0.1:9092" \
  "advertised.listeners=PLAINTEXT://localhost:9092" "log.dirs=$work/data" "metrics.listener=none" \
  "log.retention.check.interval.ms=3600000" >"$work/server.properties"
start_broker 9092

# Tests not run, printed as NOT RUN with the reason and never counted.
read_deselected "$here/rust-rdkafka/deselect.txt" rust-rdkafka
skip=()
for id in "${DESELECTED[@]}"; do skip+=(--skip "$id"); done
((${#skip[@]})) && skip+=(--exact)

run() { # run LABEL TEST_BINARY [ENV=VALUE...]
  local label=$1 bin out
  out="$logs/rust-rdkafka-$2${3:+-${3##*=}}.log"
  bin="$(test_bin "$2")"
  shift 2
  echo "== rust-rdkafka $label"
  (cd "$src" && env KAFKA_HOST=localhost:9092 KAFKA_VERSION=4.1 RUST_LOG=off "$@" \
    timeout -k 10 600 "$bin" --test-threads=4 "${skip[@]}" >"$out" 2>&1) || true
  # The tests log with `debug=all` (-a: grep must not call that binary). A run without its
  # "test result:" line (a crash, the timeout) is a failure.
  grep -aE '^test |^test result:|panicked|^  (left|right)' "$out" || true
  grep -aq '^test result:' "$out" || echo "test result: FAILED. 0 passed; 1 failed (no result from $label)"
}
# Each run's full output (librdkafka debug logs) stays in SLUICE_SUITE_LOGS when set.
logs="${SLUICE_SUITE_LOGS:-$work}"
mkdir -p "$logs"
logf="$work/suite.log"
{
  for t in test_admin test_metadata test_high_producers test_low_producers test_transactions \
    test_topic_partition_list; do
    run "$t" "$t"
  done
  for protocol in classic consumer; do
    for t in test_high_consumers test_low_consumers; do
      run "$t (group.protocol=$protocol)" "$t" SLUICE_GROUP_PROTOCOL="$protocol"
    done
  done
} | tee "$logf"
if grep -q '^test result: FAILED' "$logf"; then
  echo "rust-rdkafka suite: failed; broker log tail:"
  tail -n 40 "$work/broker.log"
  exit 1
fi
