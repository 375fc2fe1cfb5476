"""``python -m qa_tools.local``: the function on this machine, run as the image runs it, without Docker.

Three layers: the configuration read from template.yaml and the Dockerfile (no process), the sandbox with tiny
handlers that report what the runtime gave them (a child process each, no model), and the command itself with
the real handler on a tiny model: every sample event through ``invoke``, and both ``serve`` modes over HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from handler.api.events import Shape, detect_shape
from handler.api.http import ROUTES
from qa_tools.dockerfile_reader import parse_dockerfile
from qa_tools.local import config, limits
from qa_tools.local.sandbox import LocalFunction, Result
from tests.fixtures import EVENTS, ROOT
from tests.fixtures.events import EXPECTED, assert_result, load

TEMPLATE, _ = decode_str((ROOT / "template.yaml").read_text())
FUNCTION = TEMPLATE["Resources"]["QaFunction"]["Properties"]
PARAMETERS = TEMPLATE["Parameters"]


# ---------------------------------------------------------------------------------------- configuration
def test_the_function_is_configured_from_the_template_and_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "events")
    setup = config.load(caller_env={}, overrides={"MODEL_LOCAL_PATH": "../model"})
    f, env = setup.function, setup.function.environment
    assert f.name == "QaFunction"
    assert f.memory_mb == int(PARAMETERS["MemorySize"]["Default"])
    assert f.timeout_s == FUNCTION["Timeout"]
    image = parse_dockerfile()
    assert setup.target == PARAMETERS["ImageVariant"]["Default"]
    assert f.handler == image.cmd(setup.target)[0]
    assert {k: env[k] for k in image.env(setup.target)} == image.env(setup.target)  # HF_HOME, QA_BACKEND, ...
    assert env["POWERTOOLS_LOG_LEVEL"] == PARAMETERS["LogLevel"]["Default"]
    assert env["QA_ONNX_PRECISION"] == PARAMETERS["OnnxPrecision"]["Default"]
    assert env["POWERTOOLS_SERVICE_NAME"] == FUNCTION["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert env["MODEL_LOCAL_PATH"] == str(ROOT / "model")  # relative to where you are
    assert "MODEL_S3_URI" not in env and "ModelBucket" in setup.unresolved["MODEL_S3_URI"]
    assert {"MODEL_DIR", "HF_HOME", "XDG_CACHE_HOME"} <= f.tmp_variables  # Lambda's /tmp: the sandbox's own
    assert (ROOT / "handler") in f.task_root_sources
    assert setup.api is not None and setup.api.stage == PARAMETERS["StageName"]["Default"]
    assert setup.api.routes == {path: set(methods) for path, methods in ROUTES.items()}  # the handler's own


def test_parameters_targets_and_overrides(tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"  # sam local's --env-vars form
    env_file.write_text(json.dumps({"Parameters": {"MAX_WINDOWS": "8"}, "QaFunction": {"MAX_WINDOWS": "16"}}))
    setup = config.load(
        target="onnx",
        parameters={"ModelBucket": "my-models", "LogLevel": "DEBUG"},
        env_file=env_file,
        overrides={"MODEL_DIR": "/tmp/mine"},
        caller_env={
            "MODEL_S3_URI": "s3://from-your-shell/x/",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
            "SECRET": "x",
        },
    )
    env = setup.function.environment
    assert env["QA_BACKEND"] == "onnx"
    assert env["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert env["MODEL_S3_URI"] == "s3://from-your-shell/x/"  # your shell's beats the template's
    assert env["MAX_WINDOWS"] == "16"  # the function's own section of the file wins
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9" and "SECRET" not in env
    assert "MODEL_DIR" not in setup.function.tmp_variables
    templated = config.load(parameters={"ModelBucket": "my-models"}, caller_env={}).function.environment
    assert templated["MODEL_S3_URI"] == f"s3://my-models/{PARAMETERS['ModelPrefix']['Default']}"
    winner = config.load(
        env_file=env_file, overrides={"MAX_WINDOWS": "4"}, caller_env={}
    ).function.environment
    assert winner["MAX_WINDOWS"] == "4"  # --env beats the file


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: config.load(parameters={"NoSuchParameter": "1"}, caller_env={}), "NoSuchParameter"),
        (lambda: config.load(target="nope", caller_env={}), "no target 'nope'"),
        (lambda: config.assignments(["MODEL_LOCAL_PATH"], "--env"), "NAME=VALUE"),
        (lambda: config.require_model_source(config.load(caller_env={})), "MODEL_LOCAL_PATH=DIR"),
    ],
)
def test_setup_mistakes_say_what_to_pass(call: Any, says: str) -> None:
    with pytest.raises(config.SetupError, match=re.escape(says)):
        call()


# --------------------------------------------------------------------------------------------- sandbox
GENEROUS_S = 600  # a timeout no well-behaved handler meets: a guard against hangs, not a verdict on speed


@pytest.fixture
def describing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real configuration with a handler that reports its context and environment (or misbehaves), and a
    timeout of the test's choosing: ``describing(timeout_s)``."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # every sandbox directory lands here, to check it goes away
    monkeypatch.setattr("tempfile.tempdir", None)
    setup = config.load(
        caller_env={"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, overrides={"MODEL_LOCAL_PATH": "/m"}
    )
    started: list[LocalFunction] = []

    def start(timeout_s: float = GENEROUS_S) -> LocalFunction:
        function_config = dataclasses.replace(
            setup.function,
            handler="tests.fixtures.lambda_handlers.describe",
            task_root_sources=(*setup.function.task_root_sources, ROOT / "tests"),
            timeout_s=timeout_s,
        )
        started.append(LocalFunction(function_config, log=None))
        return started[-1]

    yield start
    for function in started:
        function.close()


def invoke(function: LocalFunction, event: Any) -> Result:
    return function.invoke(json.dumps(event).encode())


def test_the_handler_gets_a_lambda_context_and_the_functions_environment(describing: Any) -> None:
    function = describing()
    first, second = invoke(function, {}), invoke(function, {})
    assert first.ok and second.ok
    seen, again = first.json(), second.json()
    assert seen["function_name"] == "QaFunction"
    assert seen["memory_limit_in_mb"] == str(function.config.memory_mb)
    assert seen["invoked_function_arn"] == function.config.arn
    assert seen["log_group_name"] == "/aws/lambda/QaFunction"
    assert seen["aws_request_id"] == first.request_id != again["aws_request_id"]
    assert 0 < seen["remaining_ms"] <= GENEROUS_S * 1000  # counted down from the function's timeout
    env = seen["env"]
    sandbox_tmp = env["TMPDIR"]
    assert env["MODEL_DIR"] == f"{sandbox_tmp}/models" and env["HF_HOME"] == f"{sandbox_tmp}/huggingface"
    assert env["MODEL_LOCAL_PATH"] == "/m" and env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "QaFunction" and env["_HANDLER"] == function.config.handler
    assert seen["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert sorted(os.listdir(seen["cwd"])) == sorted(p.name for p in function.config.task_root_sources)
    assert first.init_ms is not None and second.init_ms is None  # one cold start, then warm
    assert again["env"]["TMPDIR"] == sandbox_tmp  # the same sandbox


def test_a_timeout_ends_the_sandbox_as_on_lambda(describing: Any) -> None:
    function = describing(timeout_s=1)
    result = invoke(function, {"sleep": GENEROUS_S})  # never answers in time, however fast the machine
    assert result.kind == "timeout" and not result.ok
    assert re.fullmatch(r"\S+Z \S+ Task timed out after 1\.00 seconds", result.json()["errorMessage"])
    assert function._sandbox is None  # the sandbox and its /tmp are gone ...
    assert function.start() is None  # ... and a fresh one initialises
    assert function._sandbox is not None and function._sandbox.process.poll() is None


def test_errors_and_crashes_are_function_errors(describing: Any, tmp_path: Path) -> None:
    function = describing()
    raised = invoke(function, {"raise": "boom"})
    assert (
        raised.kind == "error"
        and raised.error_type == "ValueError"
        and raised.json()["errorMessage"] == "boom"
    )
    assert invoke(function, {}).init_ms is None  # an exception does not end the sandbox
    crashed = invoke(function, {"exit": 3})
    assert crashed.kind == "exit" and "exit status 3" in crashed.json()["errorMessage"]
    assert invoke(function, {}).init_ms is not None  # a crash does: the next invocation is a cold start
    function.close()
    assert not list(tmp_path.glob("qa-local-sandbox-*"))


def test_a_response_over_lambdas_payload_limit_is_a_function_error_that_ends_the_sandbox(
    describing: Any,
) -> None:
    function = describing()
    result = invoke(function, {"pad": limits.SYNC_PAYLOAD_LIMIT})  # the rest of the result makes it too large
    assert result.kind == "error" and result.error_type == "Function.ResponseSizeTooLarge"
    assert re.fullmatch(
        r"Response payload size \(\d+ bytes\) exceeded maximum allowed payload size \(6291556 bytes\)\.",
        result.json()["errorMessage"],
    )
    assert invoke(function, {}).init_ms is not None  # the runtime client exited, as on Lambda: a cold start


# ---------------------------------------------------------------------------------------------- command
def command_env(tmp_path: Path) -> dict[str, str]:
    """A shell without MODEL_* or AWS settings; TMPDIR in the test's directory to see what is left behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(tmp)}


def run_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa_tools.local", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


def test_invoke_answers_every_sample_event_with_its_documented_status(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    names = sorted(p.name for p in EVENTS.glob("*.json"))
    assert names == sorted(EXPECTED), "every sample event is documented in docs/local-development.md's table"
    inline = {"question": "Who wrote it?", "context": "Ada wrote it."}
    events = [f"events/{n}" for n in names]
    done = run_command(
        "invoke",
        *events,
        json.dumps(inline),
        "--env",
        f"MODEL_LOCAL_PATH={tiny_bert_dir}",
        "--target",
        "torch",  # the tiny test model has torch weights only
        env=command_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()  # stdout: the results, one per line, and nothing else
    *results, answer = [json.loads(line) for line in lines]
    for name, result in zip(names, results, strict=True):
        event = load(name)
        if detect_shape(event) in (Shape.DIRECT, Shape.BATCH):  # the result is the answer(s) or the error
            assert_result(result, event, EXPECTED[name])
        else:
            assert result["statusCode"] == EXPECTED[name], name
    assert inline["context"][answer["start"] : answer["end"]] == answer["answer"]
    assert done.stderr.count("Init Duration") == 1 and done.stderr.count("REPORT RequestId") == len(names) + 1
    assert not list((tmp_path / "tmp").iterdir()), "the sandbox's /tmp is removed"


def test_invoke_without_a_model_says_what_to_pass(tmp_path: Path) -> None:
    done = run_command("invoke", "events/direct-single.json", env=command_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: no model to serve: pass --env MODEL_LOCAL_PATH=DIR")
    assert "MODEL_S3_URI" in done.stderr and "ModelBucket" in done.stderr and "Traceback" not in done.stderr


def test_invoke_reports_a_failed_init_as_lambda_does(tmp_path: Path) -> None:
    done = run_command(
        "invoke", "events/direct-single.json", "events/rest-predict.json", "--env", "MODEL_LOCAL_PATH=no/such/dir",
        env=command_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1
    (payload,) = [json.loads(line) for line in done.stdout.splitlines()]  # stops after the failed init
    assert payload["errorType"] == "ConfigurationError" and "MODEL_LOCAL_PATH" in payload["errorMessage"]
    assert "stackTrace" in payload  # the runtime's record, as Lambda returns it ...
    assert "LAMBDA_WARNING" in done.stderr and "Traceback" in done.stderr  # ... and logs it
    # ... and the one line a person needs comes last, saying what is wrong with the path
    assert done.stderr.splitlines()[-1] == (
        f"==> events/direct-single.json: init failed: ConfigurationError: MODEL_LOCAL_PATH={ROOT}/no/such/dir "
        "does not exist"
    )


def test_the_default_onnx_target_on_a_plain_model_directory_says_how_to_make_its_file(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    done = run_command(
        "invoke", "events/direct-single.json", "--env", f"MODEL_LOCAL_PATH={tiny_bert_dir}",
        env=command_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["message"].startswith(
        "the model failed to load at init (VariantMissing)"
    )
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "==> events/direct-single.json: error 503 model_unavailable: the model failed to load at init: "
        f"VariantMissing: MODEL_LOCAL_PATH={tiny_bert_dir} has no model.int8.onnx"
    )
    assert f"`python -m qa_tools.publish {tiny_bert_dir} DIR --variants onnx-int8`" in last


def no_credentials_env(tmp_path: Path) -> dict[str, str]:
    """No AWS credentials anywhere boto3 looks (instance metadata off), and S3 on a loopback port nobody serves."""
    env = command_env(tmp_path)
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL_S3="http://127.0.0.1:9")
    return env


def test_invoke_names_why_the_model_failed_to_load_and_exits_non_zero(tmp_path: Path) -> None:
    done = run_command(
        "invoke", "events/direct-single.json", "events/rest-predict.json", "--env", "MODEL_S3_URI=s3://b/p/",
        env=no_credentials_env(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1  # both invocations answered 503: a failed run, though no function error
    direct, proxied = [json.loads(line) for line in done.stdout.splitlines()]
    assert direct["error"]["status"] == 503 and proxied["statusCode"] == 503
    assert "no AWS credentials" not in done.stdout  # callers get the type only, as on Lambda
    cause = (
        "the model failed to load at init: AccessDenied: no AWS credentials to read s3://b/p/manifest.json"
    )
    status_lines = [line for line in done.stderr.splitlines() if line.startswith("==> events/")]
    assert status_lines == [
        f"==> events/direct-single.json: error 503 model_unavailable: {cause}; on Lambda the execution role "
        "provides them",
        f"==> events/rest-predict.json: HTTP 503: {cause}; on Lambda the execution role provides them",
    ]
    assert done.stderr.splitlines()[-1] == status_lines[-1]
    assert '"message":"model failed to load"' in done.stderr  # the function's own log line is relayed whole


def test_invoke_refuses_an_event_that_is_not_json(tmp_path: Path) -> None:
    done = run_command("invoke", "{not json", env=command_env(tmp_path))
    assert done.returncode == 2 and "is not JSON" in done.stderr and done.stdout == ""


def test_invoke_refuses_an_event_over_lambdas_payload_limit(tmp_path: Path) -> None:
    event = tmp_path / "big.json"
    event.write_text(json.dumps({"question": "Who?", "context": "x" * limits.SYNC_PAYLOAD_LIMIT}))
    done = run_command("invoke", str(event), env=command_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"error: the event {event} has {event.stat().st_size} bytes; Lambda refuses it "
        "(RequestEntityTooLargeException: Request must be smaller than 6291556 bytes for the Invoke operation)"
    )


class Served:
    """``python -m qa_tools.local serve ...`` in the background: its address, and what it logs."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qa_tools.local", "serve", "--port", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # every line read so far
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for(r"listening on (http://127\.0\.0\.1:\d+)")

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put("")  # end of output: the server exited

    def _wait_for(self, pattern: str) -> str:
        while line := self.lines.get(timeout=300):  # a guard against a hang, not a verdict on speed
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match[1]
        raise AssertionError("".join(self.seen))

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, Any, Any]:
        url = self.url + path  # http://127.0.0.1:PORT/...
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - loopback
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers, json.loads(error.read())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def serve(tiny_bert_dir: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(*args: str) -> Served:
        served = Served(
            *args,
            "--target",
            "torch",
            "--env",
            f"MODEL_LOCAL_PATH={tiny_bert_dir}",
            env=command_env(tmp_path),
        )
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.process.kill()
            served.process.wait()


def test_serve_offers_the_emulators_invoke_url(serve: Any, tmp_path: Path) -> None:
    served = serve()
    url = "/2015-03-31/functions/function/invocations"
    status, headers, answer = served.request("POST", url, (EVENTS / "direct-single.json").read_bytes())
    assert status == 200 and headers["X-Amz-Function-Error"] is None
    context = load("direct-single.json")["context"]
    assert context[answer["start"] : answer["end"]] == answer["answer"]
    status, _, proxied = served.request("POST", url, (EVENTS / "rest-predict.json").read_bytes())
    assert status == 200 and json.loads(proxied["body"]) == answer
    for payload in (b"not json", b"", b'{"question": "\xff"}'):  # the runtime cannot parse the event ...
        status, headers, error = served.request("POST", url, payload)
        assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"  # ... a function error,
        assert error["errorType"] == "Runtime.UnmarshalError", payload  # not the function's 4xx (docs/api.md)
    assert served.request("POST", "/2015-03-31/functions/QaFunction/invocations", b"{}")[0] == 200
    assert served.request("GET", url)[0] == 405
    # Lambda's synchronous payload limit: up to 6,291,556 bytes the function runs (and answers its own 413) ...
    at_limit = json.dumps({"question": "Who?", "context": ""}).encode()
    at_limit = at_limit[:-2] + b"x" * (limits.SYNC_PAYLOAD_LIMIT - len(at_limit)) + b'"}'
    assert len(at_limit) == limits.SYNC_PAYLOAD_LIMIT
    status, headers, answered = served.request("POST", url, at_limit)
    assert status == 200 and answered["error"]["status"] == 413
    # ... one byte more and the Invoke API refuses it before the function runs
    status, headers, refused = served.request("POST", url, at_limit[:-2] + b'x"}')
    assert status == 413 and headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert refused == {
        "Type": "User",
        "message": "Request must be smaller than 6291556 bytes for the Invoke operation",
    }
    assert served.stop() == 0
    assert not list((tmp_path / "tmp").iterdir()), "the sandbox is removed on exit"


def test_serve_api_offers_the_rest_apis_routes(serve: Any) -> None:
    served = serve("--api")
    request = load("direct-single.json")
    body = json.dumps(request).encode()
    status, headers, answer = served.request("POST", "/predict", body, **{"Content-Type": "application/json"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert request["context"][answer["start"] : answer["end"]] == answer["answer"]
    status, _, health = served.request("GET", "/health")
    assert status == 200 and health["status"] == "ok"
    # What the function answers, API Gateway passes on; what the API does not define never reaches it.
    json_type = {"Content-Type": "application/json"}
    for malformed in (b'{"question": ', b'{"question": "\xff"}'):  # the API's shapes: the function's 400
        status, _, error = served.request("POST", "/predict", malformed, **json_type)
        assert status == 400 and error["error"]["type"] == "bad_request", malformed
    status, _, error = served.request("POST", "/predict", b"", **json_type)
    assert status == 422 and error["error"]["type"] == "validation_error"  # an empty body: a 4xx too
    assert served.request("POST", "/predict", body, **{"Content-Type": "text/plain"})[0] == 415
    # A method or path the API does not define is API Gateway's MISSING_AUTHENTICATION_TOKEN gateway response,
    # 403, whatever the function would say (its own 404/405 answer only an event that reaches it).
    for method, path in [
        ("GET", "/predict"),
        ("POST", "/health"),
        ("DELETE", "/predict"),
        ("POST", "/answer"),
    ]:
        status, headers, denied = served.request(method, path, body if method == "POST" else None)
        assert status == 403 and denied == {"message": "Missing Authentication Token"}, (method, path)
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    note = served._wait_for(r"^    (SigV4 .*)$")  # the banner, after the routes
    assert note == (
        "SigV4 and API keys are not checked here; everything else answers as API Gateway does: another "
        'method or path gets its 403 {"message": "Missing Authentication Token"}'
    )
    assert not any("no auth" in line for line in served.seen)
    assert served.stop() == 0


def test_serve_says_at_start_why_every_request_will_get_503(tmp_path: Path) -> None:
    served = Served("--env", "MODEL_S3_URI=s3://b/p/", env=no_credentials_env(tmp_path))
    try:
        (warning,) = [line.rstrip("\n") for line in served.seen if line.startswith("==> warning:")]
        assert warning.startswith(
            "==> warning: the model failed to load at init: AccessDenied: no AWS credentials to read "
            "s3://b/p/manifest.json"
        )
        assert warning.endswith("every request will get 503")
    finally:
        assert served.stop() == 0
