#!/usr/bin/env bash
# Benchmarks on loopback: release server + the skein-bench load driver.
# Knobs: BENCH_THREADS (20000), BENCH_REQUESTS (8000), BENCH_CONNECTIONS (8),
# BENCH_RECONNECTS (500), BENCH_STREAM_ROUNDS (60),
# BENCH_SECONDS (10 per load row), BENCH_SECTIONS (all; e.g. load,forks), BENCH_BACKENDS (sqlite,postgres), BENCH_IDLE_THREADS
# (1000000), BENCH_IDLE_MESSAGES_PER_THREAD (10), BENCH_SIDEBAR_THREADS (1000000),
# BENCH_SIDEBAR_OWN (100000), BENCH_SEARCH_MESSAGES (1000000), BENCH_SEARCH_OWN (100000).
set -euo pipefail
cd "$(dirname "$0")/.."
# The load section drives the server with wrk (Debian's package).
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
cargo build --release -p skein -p skein-tests --bin skein --bin skein-bench
SKEIN_TEST_POSTGRES_URL="${SKEIN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}" \
  ./target/release/skein-bench
