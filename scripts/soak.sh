#!/usr/bin/env bash
# The long fault-injection soak (the bounded form runs in scripts/test.sh as
# tests/tests/faults.rs): by default 10,000 events, 20 % of Richpanel and OpenAI
# requests faulted, 25 SIGKILLs of `mw serve` at random points of its work, webhooks
# delivered twice, concurrently and out of order, a phase under the kill switch.
# Prints the oracle's counts as a table; exits 1 unless lost events, duplicate
# replies, unsafe automations and order violations are all 0.
#
#   scripts/soak.sh                          # the full run (about 10 minutes on 2 cores)
#   scripts/soak.sh --events 2000 --kills 5  # any option of `mw-soak --help`
set -euo pipefail
cd "$(dirname "$0")/.."
# The same features as scripts/test.sh, so the two share one build.
cargo build --locked --quiet --workspace --bins --features mw-adapters/aws
exec ./target/debug/mw-soak --mw ./target/debug/mw "$@"
