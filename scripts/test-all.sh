#!/usr/bin/env bash
# Runs every check Sluice has, in one go (what CI runs after .ci/run installs dependencies):
#   1. cargo fmt --check            formatting (and the module map in docs/architecture.md is
#                                   current: scripts/module-map.sh --check)
#   2. cargo build --release        the whole workspace, all targets, once
#   3. cargo clippy --release       lints (-D warnings), sharing the release build's dependencies
#   4. cargo test --release         unit + integration tests (reuses step 2's artifacts)
#   5. sluice-abuse --scale 0.05    every way a client or a resource limit has taken a broker
#                                   down, against the real binary, with its table
#   6. compat-tests/run.sh          external clients (confluent-kafka, kafka-python, kcat)
#                                   against target/release/sluice
#   7. compat-tests/client-suites/  client libraries' own integration suites (kafka-python's),
#                                   unmodified, against the release binary
#   8. scripts/fuzz.sh --ci         each fuzz target briefly (needs nightly and cargo-fuzz, which
#                                   .ci/run installs; reported as not run without them)
# Every step runs even if an earlier one failed (except that nothing runs without a build), so
# one run reports everything. Exit status is non-zero if any step failed. The last line is a
# plain "total: N passed, N failed" over cargo test and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
logdir="$(mktemp -d "${TMPDIR:-/tmp}/sluice-test-all.XXXXXX")"
failed_steps=()
start_all=$SECONDS

step() { # step NAME CMD...
  local name=$1; shift
  local t0=$SECONDS
  echo
  echo "=== [$name] $*"
  if "$@"; then
    echo "=== [$name] ok ($((SECONDS - t0)) s)"
  else
    local rc=$?
    echo "=== [$name] FAILED with exit code $rc ($((SECONDS - t0)) s)"
    failed_steps+=("$name")
  fi
}

run_cargo_tests() {
  # tee keeps the output visible; PIPESTATUS carries cargo's exit code.
  # Every wait inside the tests has its own deadline; this is the backstop against a hang.
  timeout -k 30 "${SLUICE_CARGO_TEST_TIMEOUT:-2400}" \
    cargo test --release --workspace --no-fail-fast 2>&1 | tee "$logdir/cargo-test.log"
  return "${PIPESTATUS[0]}"
}

run_compat() {
  timeout -k 30 "${SLUICE_COMPAT_TIMEOUT:-1200}" \
    compat-tests/run.sh --junitxml="$logdir/compat.xml" 2>&1 | tee "$logdir/compat.log"
  return "${PIPESTATUS[0]}"
}

step fmt cargo fmt --all -- --check --color never
step docs scripts/module-map.sh --check
step build cargo build --release --workspace --all-targets
if [[ " ${failed_steps[*]} " == *" build "* ]]; then
  echo "build failed: not running clippy, tests or compat tests"
  echo "FAILED steps: ${failed_steps[*]}"
  echo "total: 0 passed, ${#failed_steps[@]} failed"
  exit 1
fi
step clippy cargo clippy --release --workspace --all-targets -- -D warnings
step cargo-test run_cargo_tests
export SLUICE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/sluice"
run_abuse() {
  timeout -k 30 "${SLUICE_ABUSE_TIMEOUT:-900}" \
    "$(dirname "$SLUICE_BIN")/sluice-abuse" --broker "$SLUICE_BIN" --scale "${SLUICE_ABUSE_SCALE:-0.05}" \
    2>&1 | tee "$logdir/abuse.log"
  return "${PIPESTATUS[0]}"
}
step abuse run_abuse
step compat run_compat
run_client_suites() {
  # Client libraries' own integration suites, unmodified, against the release binary: each runs
  # even if one before it failed.
  local rc=0
  timeout -k 30 "${SLUICE_CLIENT_SUITES_TIMEOUT:-900}" \
    compat-tests/client-suites/kafka-python.sh "$logdir/kafka-python-suite.xml" 2>&1 | tee "$logdir/client-suites.log"
  ((PIPESTATUS[0] == 0)) || rc=1
  for suite in rust-rdkafka librdkafka; do
    timeout -k 30 "${SLUICE_CLIENT_SUITES_TIMEOUT:-2400}" \
      "compat-tests/client-suites/$suite.sh" 2>&1 | tee -a "$logdir/client-suites.log"
    ((PIPESTATUS[0] == 0)) || rc=1
  done
  return $rc
}
step client-suites run_client_suites
run_fuzz() {
  PATH="${CARGO_FUZZ_ROOT:-$HOME/.cache/sluice/cargo-fuzz}/bin:$PATH"
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    # Printed, not counted: the run's totals never include it as passed.
    echo "fuzz: NOT RUN: no nightly toolchain or cargo-fuzz (scripts/fuzz.sh says how to get them)"
    return 0
  fi
  timeout -k 30 "${SLUICE_FUZZ_TIMEOUT:-2400}" scripts/fuzz.sh --ci
}
step fuzz run_fuzz

# Totals from cargo's "test result:" lines and pytest's junit xml.
read -r cp cf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$logdir/cargo-test.log" 2>/dev/null || echo "0 0")
junit_totals() { # junit_totals XML...: "passed failed skipped" summed over pytest junit files
  python3 - "$@" <<'PY' 2>/dev/null || echo "0 0 0"
import sys, xml.etree.ElementTree as ET
t = f = sk = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception:
        continue
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    t += sum(int(s.get("tests", 0)) for s in suites)
    f += sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    sk += sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f, sk)
PY
}
read -r pp pf ps < <(junit_totals "$logdir/compat.xml")
read -r sp sf ss < <(junit_totals "$logdir/kafka-python-suite.xml")
# rust-rdkafka's "test result:" lines and librdkafka's summary rows ("| 0001_multiobj | PASSED |").
read -r rp rf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  /^\| [0-9][0-9][0-9][0-9]_/ { if ($4 == "PASSED") p++; else if ($4 == "FAILED") f++ } END { print p + 0, f + 0 }' \
  <(sed 's/\x1b\[[0-9;]*m//g' "$logdir/client-suites.log" 2>/dev/null) 2>/dev/null || echo "0 0")
sp=$((sp + rp))
sf=$((sf + rf))
# The abuse table's rows: "| name | ... | yes | yes | ..." passed, any "NO" failed.
read -r ap af < <(awk -F'|' 'NF > 8 && $2 !~ /case|---/ { if ($5 ~ /yes/ && $6 ~ /yes/) p++; else f++ } END { print p + 0, f + 0 }' "$logdir/abuse.log" 2>/dev/null || echo "0 0")
echo
echo "cargo test: $cp passed, $cf failed | abuse: $ap passed, $af failed | compat (pytest): $pp passed, $pf failed, $ps skipped | client suites: $sp passed, $sf failed, $ss skipped | $((SECONDS - start_all)) s"
if ((${#failed_steps[@]})); then
  echo "FAILED steps: ${failed_steps[*]} (logs in $logdir)"
fi
# A failed step with no failed test in it (fmt, clippy, a crash before any test) counts as one.
extra=0
for s in "${failed_steps[@]}"; do
  case $s in
    cargo-test) ((cf > 0)) || extra=$((extra + 1)) ;;
    abuse) ((af > 0)) || extra=$((extra + 1)) ;;
    compat) ((pf + ps > 0)) || extra=$((extra + 1)) ;;
    client-suites) ((sf + ss > 0)) || extra=$((extra + 1)) ;;
    *) extra=$((extra + 1)) ;;
  esac
done
echo "total: $((cp + ap + pp + sp)) passed, $((cf + af + pf + ps + sf + ss + extra)) failed"
((${#failed_steps[@]} == 0))
