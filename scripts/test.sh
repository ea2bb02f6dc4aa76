#!/usr/bin/env bash
# The whole test suite, on a fresh clone: installs and starts what the tests need,
# runs them, stops what it started. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "build (workspace, all targets)"
cargo build --workspace --all-targets --locked

step "decision core stays free of I/O crates"
forbidden='^(tokio|reqwest|rusqlite|hyper|aws-[a-z-]+|mio) '
if cargo tree -p mw-core -p mw-policy -p mw-templates -e normal --prefix none --locked \
    | grep -E "$forbidden"; then
  echo "error: mw-core, mw-policy and mw-templates must not depend on the crates above" >&2
  exit 1
fi

step "template catalog lint"
./target/debug/mw templates lint

step "golden set: hard gates (rules and recorded classifiers)"
./target/debug/mw eval golden/golden_v1.jsonl --classifier rules
./target/debug/mw eval golden/golden_v1.jsonl --classifier recorded > /dev/null

step "doc tests"
cargo test --workspace --doc --locked

step "unit, property and end-to-end tests"
if cargo nextest --version > /dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "cargo-nextest not found; using cargo test"
  cargo test --workspace --locked --no-fail-fast --lib --bins --tests
fi
