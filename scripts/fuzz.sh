#!/usr/bin/env bash
# Coverage-guided fuzzing of every target in fuzz/ (cargo-fuzz, libFuzzer), one target at a time.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]   fuzz each target MINUTES minutes (default 5), keeping
#                                           the grown corpus in fuzz/corpus/TARGET (not committed)
#   scripts/fuzz.sh --ci [TARGET...]        each target for SLUICE_FUZZ_CI_SECONDS (default 25) s,
#                                           from an empty scratch corpus: a smoke test for CI
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`; set CARGO_FUZZ_ROOT to
# an install root such as $HOME/.cache/sluice/cargo-fuzz to use one outside PATH). A crash, leak,
# timeout or out-of-memory stops that target, leaves the input in fuzz/artifacts/TARGET/, and makes
# the script exit non-zero once every target has run. Reproduce one with
#   cd fuzz && cargo +nightly fuzz run -O --target-dir ~/.cache/sluice/fuzz-target TARGET artifacts/TARGET/crash-...
# and turn it into a regression test in the normal suite before fixing it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

ci=0
minutes=5
if [[ ${1:-} == --ci ]]; then
  ci=1
  shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  minutes=$1
  shift
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(frame dispatch record_batch segment_recovery)
fi
if ((ci)); then
  seconds=${SLUICE_FUZZ_CI_SECONDS:-25}
else
  seconds=$((minutes * 60))
fi

if [[ -n ${CARGO_FUZZ_ROOT:-} ]]; then
  PATH="$CARGO_FUZZ_ROOT/bin:$PATH"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
fi

# Sanitizer builds of the whole broker are slow; their target dir lives outside the clone so a
# fresh clone on the same machine (CI) rebuilds only Sluice's own crates.
target_dir=${SLUICE_FUZZ_TARGET_DIR:-$HOME/.cache/sluice/fuzz-target}
mkdir -p "$target_dir"

t0=$SECONDS
echo "== fuzz.sh: building ${targets[*]} (target dir $target_dir)"
# `fuzz build` takes one target or all; build all when several are asked for.
if ((${#targets[@]} > 1)); then
  cargo +nightly fuzz build -O --target-dir "$target_dir"
else
  cargo +nightly fuzz build -O --target-dir "$target_dir" "${targets[0]}"
fi
echo "== fuzz.sh: built in $((SECONDS - t0)) s"

failed=()
for target in "${targets[@]}"; do
  mkdir -p "artifacts/$target"
  if ((ci)); then
    corpus=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz-$target.XXXXXX")
  else
    corpus="corpus/$target"
    mkdir -p "$corpus"
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/sluice-fuzz-$target.XXXXXX.log")
  echo "== fuzz.sh: $target for $seconds s"
  started=$SECONDS
  # One process at a time; an input may take 10 s and 2 GiB of RSS, and no single allocation may
  # exceed 1 GiB: more than that from one small input is a bug (a count or length trusted before
  # it is checked).
  if cargo +nightly fuzz run -O --target-dir "$target_dir" "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "== fuzz.sh: $target ok: $runs inputs in $((SECONDS - started)) s"
  else
    echo "== fuzz.sh: $target FAILED after $((SECONDS - started)) s; the last lines of its log:"
    tail -n 40 "$log"
    failed+=("$target")
  fi
  if ((ci)); then
    rm -rf "$corpus"
  fi
  rm -f "$log"
done

echo "== fuzz.sh: ${#targets[@]} targets, $((SECONDS - t0)) s in total"
if ((${#failed[@]})); then
  echo "== fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
