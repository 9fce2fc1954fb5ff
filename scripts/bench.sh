#!/usr/bin/env bash
# Runs Sluice's benchmark (docs/benchmarks.md): builds the release `sluice`, `sluice-bench` and
# `sluice-null-broker` binaries, then runs the standard workloads W1–W6 against Sluice and the
# in-memory baseline. Tables go to stdout, JSON to target/sluice-bench/results.json.
# Arguments are passed to `sluice-bench all`, e.g.  scripts/bench.sh --scale 1 --json out.json
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sluice -p sluice-bench --bin sluice --bin sluice-bench --bin sluice-null-broker
exec target/release/sluice-bench all --no-build "$@"
