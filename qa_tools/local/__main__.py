"""Command line: ``python -m qa_tools.local {invoke,serve} ...`` (see ``--help``). Results on stdout, logs on stderr."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from qa_tools import local as package
from qa_tools.local import config, limits
from qa_tools.local.gateway import (
    UNDEFINED_ROUTE_BODY,
    UNDEFINED_ROUTE_STATUS,
    InvokeEndpoint,
    RestApi,
    make_server,
)
from qa_tools.local.sandbox import LocalFunction, Result

DEFAULT_PORTS = {"invoke": 9000, "api": 3000}  # the emulator's usual -p 9000:8080; sam local start-api's 3000
EXAMPLES = """examples:
  python -m qa_tools.local invoke events/rest-predict.json --target torch --env MODEL_LOCAL_PATH=models/minilm-l6-squad
  python -m qa_tools.local invoke events/*.json --env MODEL_LOCAL_PATH=./model --target onnx
  python -m qa_tools.local invoke '{"question": "Who?", "context": "Ada wrote it."}' --env MODEL_LOCAL_PATH=./model
  python -m qa_tools.local serve --env MODEL_LOCAL_PATH=./model        # POST :9000/2015-03-31/functions/function/invocations
  python -m qa_tools.local serve --api --env MODEL_LOCAL_PATH=./model  # POST :3000/predict, GET :3000/health
"""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="a function environment variable (repeatable), e.g. MODEL_LOCAL_PATH=DIR or MODEL_S3_URI=s3://b/p/",
    )  # fmt: skip
    common.add_argument(
        "--env-file", type=Path, metavar="FILE",
        help='JSON: {"NAME": "VALUE"} or sam local\'s --env-vars form; --env wins over it',
    )  # fmt: skip
    common.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE",
        help="a template parameter (repeatable), e.g. ModelBucket=my-bucket, LogLevel=DEBUG",
    )  # fmt: skip
    common.add_argument(
        "--target",
        help="Dockerfile target whose ENV and CMD to use (default: the template's, i.e. ImageVariant)",
    )

    parser = argparse.ArgumentParser(
        prog="python -m qa_tools.local",
        description=(package.__doc__ or "").split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    invoke = commands.add_parser(
        "invoke",
        parents=[common],
        help="answer events, one cold start for all; results on stdout, one per line",
    )
    invoke.add_argument(
        "events", nargs="+", metavar="EVENT", help="a JSON file, '-' for stdin, or inline JSON"
    )
    serve = commands.add_parser(
        "serve", parents=[common], help="serve the function on 127.0.0.1 until Ctrl-C"
    )
    serve.add_argument("--api", action="store_true", help="the REST API's routes instead of the invoke URL")
    serve.add_argument("--port", type=int, help="default 9000 (3000 with --api); 0 picks a free port")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        payloads = [_read_event(e) for e in args.events] if args.command == "invoke" else []
        setup = config.load(
            target=args.target,
            parameters=config.assignments(args.parameter, "--parameter"),
            env_file=args.env_file,
            overrides=config.assignments(args.env, "--env"),
        )
        config.require_model_source(setup)
    except config.SetupError as exc:
        _log(f"error: {exc}")
        return 2
    f = setup.function
    _log(
        f"==> {f.name}: Dockerfile target {setup.target}, {f.handler}, {f.memory_mb} MB, timeout {f.timeout_s:g} s"
    )
    if args.command == "invoke":
        return _invoke(setup, list(zip(args.events, payloads, strict=True)))
    return _serve(setup, args.api, args.port)


def _invoke(setup: config.LocalSetup, events: list[tuple[str, bytes]]) -> int:
    """Exit status 1 if any invocation failed: a function error, or a 5xx answer (e.g. the model did not load)."""
    failed = False
    with LocalFunction(setup.function) as function:
        for name, payload in events:
            result = function.invoke(payload)
            sys.stdout.buffer.write(result.body + b"\n")
            sys.stdout.flush()
            _log(result.report(setup.function.memory_mb))
            # The status line comes last, after the function's logs and the REPORT line: where a person looks.
            _log(f"==> {_label(name)}: {summary(result, function.model_failure())}")
            failed |= not result.ok or (status(result) or 0) >= 500
            if result.kind == "init_error":  # every other event would fail the same way
                break
    return 1 if failed else 0


def _serve(setup: config.LocalSetup, api: bool, port: int | None) -> int:
    if api and (setup.api is None or not setup.api.routes):
        _log(
            "error: template.yaml defines no REST API with routes (AWS::Serverless::Api DefinitionBody paths)"
        )
        return 2
    for stop in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a background job)
        signal.signal(stop, _stop)
    try:  # a stop at any point (during init, or before serving began) ends cleanly
        with LocalFunction(setup.function) as function:
            _log("==> init (once per sandbox; later invocations are warm) ...")
            failure = function.start()
            if failure is not None:
                sys.stdout.buffer.write(failure.body + b"\n")
                _log(f"==> {summary(failure)}")
                return 1
            cause = function.model_failure()
            if cause:  # init succeeded, but every request will be a 503 until the cause is fixed
                _log(f"==> warning: the model failed to load at init: {cause}; every request will get 503")
            front = RestApi(function, setup.api) if api and setup.api else InvokeEndpoint(function)
            server = make_server(front, DEFAULT_PORTS["api" if api else "invoke"] if port is None else port)
            try:
                _banner(front, server.server_address[:2])
                server.serve_forever()
            finally:
                server.server_close()
    except KeyboardInterrupt:
        pass
    _log("==> stopped")
    return 0


def _banner(front: RestApi | InvokeEndpoint, address: tuple[Any, ...]) -> None:
    host, port = address
    _log(f"==> listening on http://{host}:{port} (Ctrl-C stops)")
    if isinstance(front, InvokeEndpoint):
        _log(f"    POST http://{host}:{port}{sorted(front.paths)[0]}")
        return
    for path, methods in sorted(front.api.routes.items()):
        _log(f"    {' '.join(sorted(methods))} http://{host}:{port}{path}  (stage {front.api.stage})")
    _log(
        "    SigV4 and API keys are not checked here; everything else answers as API Gateway does: another "
        f"method or path gets its {UNDEFINED_ROUTE_STATUS} {json.dumps(UNDEFINED_ROUTE_BODY)}"
    )


def summary(result: Result, model_failure: str | None = None) -> str:
    """One line for a person: the HTTP status, the error a direct invoke returned, or the function error; for a
    5xx while the model is not loaded, the cause the function logged (``model_failure``), not "see the logs"."""
    body = _body(result)
    if not result.ok:
        message = (
            body.get("errorMessage", "") if isinstance(body, dict) else result.body.decode("utf-8", "replace")
        )
        what = "init failed" if result.kind == "init_error" else f"function error ({result.kind})"
        return f"{what}: {result.error_type or 'error'}: {message}"
    code = status(result)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        line = f"error {error.get('status')} {error.get('type')}: {error.get('message')}"
    else:
        line = "answered" if code is None else f"HTTP {code}"
    if model_failure and code is not None and code >= 500:
        head = line.split(": ", 1)[0]
        return f"{head}: the model failed to load at init: {model_failure}"
    return line


def status(result: Result) -> int | None:
    """The HTTP status a successful invocation reports: a proxy result's statusCode or a direct error's status."""
    body = _body(result)
    if not result.ok or not isinstance(body, dict):
        return None
    if isinstance(body.get("statusCode"), int):
        return int(body["statusCode"])
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("status"), int):
        return int(error["status"])
    return None


def _body(result: Result) -> Any:
    try:
        return result.json()
    except ValueError:
        return None


def _read_event(spec: str) -> bytes:
    """A file, '-' (stdin) or inline JSON; checked to be JSON here so a typo is not a function error."""
    if spec == "-":
        raw = sys.stdin.buffer.read()
    elif spec.lstrip().startswith(("{", "[")):
        raw = spec.encode()
    else:
        try:
            raw = Path(spec).read_bytes()
        except OSError as exc:
            raise config.SetupError(f"cannot read the event {spec}: {exc.strerror}") from None
    try:
        json.loads(raw)
    except ValueError as exc:
        raise config.SetupError(f"the event {_label(spec)} is not JSON: {exc}") from None
    too_large = limits.request_too_large(len(raw))
    if too_large:
        raise config.SetupError(
            f"the event {_label(spec)} has {len(raw)} bytes; Lambda refuses it ({limits.REQUEST_ERROR_TYPE}: "
            f"{too_large})"
        )
    return raw


def _label(spec: str) -> str:
    return "stdin" if spec == "-" else "inline event" if spec.lstrip().startswith(("{", "[")) else spec


def _stop(*_: Any) -> NoReturn:
    raise KeyboardInterrupt


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
