#!/usr/bin/env bash
# API fuzzing of the ingress: schemathesis, driven by schemas/openapi.yaml, against a
# running `mw serve` (SQLite, rules, dry-run outbox) on 127.0.0.1. Fails on any 5xx
# and on any response that does not match the spec (status, content type, body,
# headers). Usage: scripts/api-fuzz.sh VENV [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:?usage: scripts/api-fuzz.sh VENV [MAX_EXAMPLES]}"
examples="${2:-150}"
mw=./target/debug/mw
[ -x "$mw" ] || { echo "error: $mw not built; run cargo build -p mw-cli --bin mw" >&2; exit 1; }
[ -x "$venv/bin/st" ] || { echo "error: schemathesis is not installed in $venv" >&2; exit 1; }

data_dir="$(mktemp -d)"
port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="api-fuzz-$RANDOM$RANDOM"
MW_DATA_DIR="$data_dir" MW_WEBHOOK_TOKENS="$token" MW_RATE_LIMIT_PER_SEC=0 MW_LOG=warn \
  "$mw" serve --listen "127.0.0.1:$port" > "$data_dir/serve.out" 2> "$data_dir/serve.log" &
serve_pid=$!
cleanup() { kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; rm -rf "$data_dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "error: mw serve exited:" >&2; cat "$data_dir/serve.log" >&2; exit 1; }
  sleep 0.1
done

# Every check: no 5xx; status codes, content types, bodies and headers as documented;
# schema-valid bodies accepted, invalid ones refused.
"$venv/bin/st" --no-color run schemas/openapi.yaml \
  --url "http://127.0.0.1:$port" \
  --header "x-richpanel-webhook-token: $token" \
  --checks all \
  --max-examples "$examples" --seed 20261122 \
  --request-timeout 10 --workers 2
kill -0 "$serve_pid" 2>/dev/null || { echo "error: mw serve died during the run" >&2; exit 1; }
echo "schemathesis: no failures; mw serve still up"
