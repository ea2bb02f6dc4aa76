#!/usr/bin/env python3
"""Initialisation time of the Lambda functions: from process start to ready.

"Ready" is the moment a function first asks the Lambda Runtime API for an event
(GET /2018-06-01/runtime/invocation/next): everything before it is the cold start,
including the secret reads. The script starts moto (secrets, queue, tables, flags) and
a minimal Runtime API on 127.0.0.1, launches each bootstrap binary RUNS times and
prints the median and the maximum, plus the binary sizes.

    scripts/bench_lambda_init.py [--venv .venv] [--runs 20]

Build the binaries first: `cargo lambda build --release --package mw-lambda`.
The venv needs moto[server] and boto3 (`scripts/test.sh` installs them).
"""

import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARIES = {
    "mw-ingress": ROOT / "target/lambda/mw-ingress/bootstrap",
    "mw-worker": ROOT / "target/lambda/mw-worker/bootstrap",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Records when the function first polls for an event, then holds it."""

    ready = threading.Event()
    ready_at = 0.0

    def do_GET(self):  # noqa: N802 (http.server naming)
        if self.path.endswith("/runtime/invocation/next"):
            RuntimeApi.ready_at = time.perf_counter()
            RuntimeApi.ready.set()
            time.sleep(5)  # the process is killed before this returns
        self.send_response(404)
        self.end_headers()

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length).decode(errors="replace")
        print(f"runtime API POST {self.path}: {body[:300]}", file=sys.stderr)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def provision(boto3, endpoint):
    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
    secrets = boto3.client("secretsmanager", **kwargs)
    arn = lambda name, value: secrets.create_secret(  # noqa: E731
        Name=f"bench/{name}/{time.time_ns()}", SecretString=json.dumps(value))["ARN"]
    sqs = boto3.client("sqs", **kwargs)
    queue = sqs.create_queue(QueueName=f"bench-{time.time_ns()}.fifo",
                             Attributes={"FifoQueue": "true"})["QueueUrl"]
    ssm = boto3.client("ssm", **kwargs)
    ssm.put_parameter(Name="/bench/flags/safe_mode", Value="true", Type="String", Overwrite=True)
    return {
        "MW_STAGE": "bench",
        "MW_QUEUE_URL": queue,
        "MW_WEBHOOK_SECRET_ARN": arn("webhook", {"token": "bench-token"}),
        "MW_RICHPANEL_SECRET_ARN": arn("richpanel", {"api_key": "bench-key"}),
        "MW_OPENAI_SECRET_ARN": arn("openai", {"api_key": ""}),
        "MW_RICHPANEL_BOT_AUTHOR_ID": "bench-bot",
        "MW_IDEMPOTENCY_TABLE": "bench-idempotency",
        "MW_STATE_TABLE": "bench-state",
        "MW_AUDIT_TABLE": "bench-audit",
        "MW_FLAGS_PATH": "/bench/flags",
        "MW_AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "MW_LOG": "warn",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for name, path in BINARIES.items():
        if not path.exists():
            sys.exit(f"{path} is missing: run `cargo lambda build --release --package mw-lambda` first")
    sys.path.insert(0, str(next(Path(args.venv).glob("lib/python3*/site-packages"))))
    import boto3  # noqa: E402 (from the venv)

    moto_port = free_port()
    moto = subprocess.Popen([str(Path(args.venv) / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api_port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", api_port), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/")
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, **provision(boto3, endpoint), AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api_port}",
                   AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                   AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_STREAM_NAME="bench",
                   AWS_LAMBDA_LOG_GROUP_NAME="bench")
        print(f"{'function':<12} {'binary':>10} {'median':>10} {'max':>10}  (process start to ready, {args.runs} runs)")
        for name, path in BINARIES.items():
            times = []
            for _ in range(args.runs):
                RuntimeApi.ready.clear()
                started = time.perf_counter()
                process = subprocess.Popen([str(path)], env=env, stdout=subprocess.DEVNULL)
                if not RuntimeApi.ready.wait(timeout=30):
                    process.kill()
                    sys.exit(f"{name} did not become ready within 30 s (exit code {process.poll()})")
                times.append((RuntimeApi.ready_at - started) * 1000)
                process.kill()
                process.wait()
            size = path.stat().st_size / 1_000_000
            print(f"{name:<12} {size:>8.1f}MB {statistics.median(times):>8.1f}ms {max(times):>8.1f}ms")
    finally:
        server.shutdown()
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
