#!/usr/bin/env bash
# Benchmarks on loopback: release server + the skein-bench load driver.
# Knobs: BENCH_THREADS (20000), BENCH_REQUESTS (8000), BENCH_CONNECTIONS (8).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p skein -p skein-tests --bin skein --bin skein-bench
SKEIN_TEST_POSTGRES_URL="${SKEIN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}" \
  ./target/release/skein-bench
