"""The main job, locally: publish a model to a local S3, cold-start the Lambda handler from it, answer.

Starts moto's S3 server on 127.0.0.1, publishes MODEL (a local model directory, or a Hugging Face model id
which needs internet once) with ``qa_tools.publish``, then imports ``handler.app`` exactly as Lambda's init
would (MODEL_S3_URI pointing at the local bucket, MODEL_DIR in a temporary /tmp directory) and invokes
``lambda_handler`` with a sample API Gateway event, printing the HTTP response and the timings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_MODEL = "deepset/roberta-base-squad2"
BUCKET = "demo-models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ctx:
    """A LambdaContext stand-in for a direct call of the handler."""

    function_name = "extractive-qa-demo"
    function_version = "$LATEST"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:extractive-qa-demo"
    aws_request_id = "demo-request"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "model", nargs="?", default=DEFAULT_MODEL, help=f"model dir or hub id ({DEFAULT_MODEL})"
    )
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="QA_BACKEND")
    parser.add_argument("--question", help="ask this instead of the sample event's question")
    parser.add_argument("--context", help="with --question: the context to answer from")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    cache = tempfile.mkdtemp(prefix="qa-demo-models-")
    # Dummy credentials for the local moto server only; on AWS the standard chain (the role) is used.
    os.environ.update(
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - not a secret: moto accepts anything
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="1",
        POWERTOOLS_METRICS_DISABLED="1",
        QA_BACKEND=args.backend,
        MODEL_DIR=cache,
    )
    try:
        from handler.store.s3 import make_client
        from qa_tools.publish import publish

        make_client().create_bucket(Bucket=BUCKET)
        prefix = Path(args.model.rstrip("/")).name
        variant = "torch" if args.backend == "torch" else "onnx-int8"
        uri = f"s3://{BUCKET}/{prefix}/"
        print(f"==> publishing {args.model} ({variant}) to {uri} on the local S3", file=sys.stderr)
        publish(args.model, uri, variants=[variant])

        os.environ["MODEL_S3_URI"] = uri
        print(
            "==> Lambda init: import handler.app (download from S3, verify, load, warm up)", file=sys.stderr
        )
        started = time.perf_counter()
        app = importlib.import_module("handler.app")
        init_s = time.perf_counter() - started
        if app.SERVICE.engine is None:
            print(f"init failed: {app.SERVICE.unavailable}", file=sys.stderr)
            return 1

        event = json.loads((ROOT / "events" / "rest-predict.json").read_text())
        request = json.loads(event["body"])
        if args.question:
            request = {"question": args.question, "context": args.context or request["context"]}
            event["body"] = json.dumps(request)
        started = time.perf_counter()
        response = app.lambda_handler(event, Ctx())
        invoke_ms = (time.perf_counter() - started) * 1000
        print(f"==> question: {request['question']}", file=sys.stderr)
        print(f"==> init {init_s:.1f} s, first invocation {invoke_ms:.0f} ms; HTTP {response['statusCode']}:")
        print(json.dumps(json.loads(response["body"]), indent=2))
        return 0 if response["statusCode"] == 200 else 1
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
