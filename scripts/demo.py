"""The main job, locally: publish a model to a local S3, cold-start the Lambda function from it, answer.

Starts moto's S3 server on 127.0.0.1, publishes MODEL (a model directory, relative to where you run this, or a
Hugging Face model id, which needs internet once; by default the repository's embedded models/minilm-l6-squad)
with ``qa_tools.publish``, then runs the function as the container image does (``qa_tools.local``: the runtime
interface client against a local Runtime API, with the template's settings) with MODEL_S3_URI pointing at the
local bucket, and sends it events/rest-predict.json, or your --question and --context in the same API Gateway
event.

stdout carries the answer JSON and nothing else (``demo.sh ... > answer.json``); the question and context,
progress, and the function's logs and metrics go to stderr. Nothing is left behind: the function's model copy
lives in its sandbox's /tmp, and everything else in a temporary directory of this process, removed on exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handler import variants  # noqa: E402 - after the repository is on the path
from qa_tools import EMBEDDED_MODEL  # noqa: E402
from qa_tools.local import config  # noqa: E402
from qa_tools.local.sandbox import LocalFunction  # noqa: E402

# The small model the repository ships: the demo answers offline. Production: deepset/roberta-base-squad2.
DEFAULT_MODEL = str(EMBEDDED_MODEL.relative_to(ROOT))
BUCKET = "demo-models"
# --backend -> the variant published: the one the image selects when no precision is set
VARIANT = {backend: variants.default_for(backend).name for backend in variants.BACKENDS}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bash scripts/demo.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "model",
        nargs="?",
        help=f"model directory or Hugging Face id, e.g. deepset/roberta-base-squad2 (default: the embedded "
        f"{DEFAULT_MODEL}, a small real model that needs no network)",
    )
    parser.add_argument(
        "--backend", choices=sorted(VARIANT), default="torch", help="the image variant to run"
    )
    parser.add_argument("--question", help="ask this (with --context) instead of the sample event's question")
    parser.add_argument("--context", help="the text to answer --question from")
    args = parser.parse_args(argv)
    if (args.question is None) != (args.context is None):
        parser.error("--question and --context go together: give both, or neither for the sample question")
    return args


def argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, found before the local S3, the publish and the function's init start,
    so a mistake costs no wait; None if nothing is."""
    from qa_tools.publish import local_source

    for option in ("question", "context"):
        text: str | None = getattr(args, option)
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
            return f"--{option} is not UTF-8 text: check the encoding of your terminal or of the file it came from"
    if args.model is None:  # the embedded model, checked by the fresh-clone test
        return None
    try:
        local_source(args.model)  # a Hub id is checked when fetched
    except ValueError as exc:
        return str(exc)
    return None


def step(message: str) -> float:
    print(f"==> {message}", file=sys.stderr, flush=True)
    return time.perf_counter()


def done(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


@contextmanager
def own_tmp() -> Iterator[Path]:
    """This process's temporary files in a directory of its own, removed on exit, whatever the libraries leave
    there (ONNX Runtime's telemetry session file, torch's compile cache directory, ...)."""
    scratch = Path(tempfile.mkdtemp(prefix="qa-demo-"))
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None  # re-read TMPDIR
    try:
        yield scratch
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with own_tmp():
        return run(args)


def run(args: argparse.Namespace) -> int:
    event = json.loads((ROOT / "events" / "rest-predict.json").read_text())
    request = json.loads(event["body"])
    if args.question is not None:
        request = {"question": args.question, "context": args.context}
        event["body"] = json.dumps(request)
    # A path is from where you are; the default, the embedded model, is the repository's wherever you are.
    model = EMBEDDED_MODEL if args.model is None else Path(args.model).expanduser()
    source = str(model.resolve()) if model.exists() else str(args.model)

    from moto.server import ThreadedMotoServer

    from handler.store import make_client
    from qa_tools.publish import publish

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log: one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Dummy credentials for the local S3 only; on AWS the function gets the execution role's.
    local_s3 = {"AWS_ENDPOINT_URL_S3": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "local"}
    local_s3 |= {
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    os.environ.update(local_s3)  # this process publishes to the local S3 only
    function: LocalFunction | None = None
    try:
        variant = VARIANT[args.backend]
        uri = f"s3://{BUCKET}/{Path(source.rstrip('/')).name}/"
        shown = args.model or DEFAULT_MODEL
        started = step(f"[1/3] publishing {shown} ({variant}) to {uri} on a local S3 (127.0.0.1:{port})")
        try:
            make_client().create_bucket(Bucket=BUCKET)
            publish(source, uri, variants=[variant])
        except (ValueError, OSError) as exc:  # an unknown or unreachable model: say what to do, no traceback
            print(f"error: {exc}", file=sys.stderr)
            return 2
        step(f"published in {done(started)}")

        setup = config.load(target=args.backend, caller_env=local_s3, overrides={"MODEL_S3_URI": uri})
        function = LocalFunction(setup.function)
        started = step(
            "[2/3] Lambda init: the function downloads the model from S3, verifies, loads and warms it up"
        )
        failure = function.start()
        if failure is not None:
            print(f"error: the function failed to initialise: {failure.body.decode()}", file=sys.stderr)
            return 1
        step(f"initialised in {done(started)}")

        step(f"[3/3] question: {request['question']}")
        step(f"context: {request['context']}")
        result = function.invoke(json.dumps(event).encode())
        if not result.ok:
            print(f"error: the invocation failed: {result.body.decode()}", file=sys.stderr)
            return 1
        response: dict[str, Any] = result.json()
        step(f"answered in {result.duration_ms:.0f} ms: HTTP {response['statusCode']}")
        print(json.dumps(json.loads(response["body"]), indent=2))  # the one thing on stdout
        return 0 if response["statusCode"] == 200 else 1
    finally:
        if function is not None:
            function.close()
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
