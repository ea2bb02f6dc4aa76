#!/usr/bin/env bash
# The whole test suite, on a fresh clone: installs and starts what the tests need,
# runs them, stops what it started. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "build (workspace, all targets)"
cargo build --workspace --all-targets --locked --features mw-adapters/aws

step "decision core stays free of I/O crates"
forbidden='^(tokio|reqwest|rusqlite|hyper|aws-[a-z-]+|mio) '
if cargo tree -p mw-core -p mw-policy -p mw-templates -e normal --prefix none --locked \
    | grep -E "$forbidden"; then
  echo "error: mw-core, mw-policy and mw-templates must not depend on the crates above" >&2
  exit 1
fi

step "template catalog lint"
./target/debug/mw templates lint

step "golden sets: hard gates (rules and recorded classifiers; golden and adversarial)"
./target/debug/mw eval golden/golden_v1.jsonl --classifier rules
./target/debug/mw eval golden/golden_v1.jsonl --classifier recorded > /dev/null
./target/debug/mw eval golden/adversarial_v1.jsonl --classifier rules
./target/debug/mw eval golden/adversarial_v1.jsonl --classifier recorded > /dev/null

step "python tools in .venv: moto (local AWS), cfn-lint, aws-sam-translator, schemathesis"
venv=".venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  'moto[server]>=5.1,<6' 'cfn-lint>=1.20,<2' 'aws-sam-translator>=1.90,<2' 'schemathesis>=4.3,<5'

step "API fuzzing: schemathesis from schemas/openapi.yaml against mw serve"
bash scripts/api-fuzz.sh "$venv"

step "deploy/template.yaml: cfn-lint, then cfn-lint again after the SAM transform"
bash scripts/lint-deploy.sh "$venv"

step "start moto on 127.0.0.1 (stopped on exit)"
moto_port="$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p target
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "error: moto_server exited; see target/moto.log" >&2
    exit 1
  fi
  sleep 0.2
done
"$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/')" \
  || { echo "error: moto_server did not answer on 127.0.0.1:$moto_port; see target/moto.log" >&2; exit 1; }
export MW_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
echo "moto on $MW_TEST_AWS_ENDPOINT"

step "doc tests"
cargo test --workspace --doc --locked --features mw-adapters/aws

step "unit, property and end-to-end tests"
if cargo nextest --version > /dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --features mw-adapters/aws
else
  echo "cargo-nextest not found; using cargo test"
  cargo test --workspace --locked --no-fail-fast --lib --bins --tests --features mw-adapters/aws
fi
