"""Security checks: request text stays out of the logs, no secrets in the repository, deploy config keeps
debug logging off and access narrow, and bandit finds nothing in the handler.

tests/infra/test_template.py owns the template's IAM statements and auth switch; the checks here are the
repository-wide ones (every tracked file, every policy anywhere, every way to reach the function).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from cfnlint.decode import decode_str

from tests.fixtures import ROOT, repository_files
from tests.fixtures.backends import FaultyBackend
from tests.fixtures.events import invoke, load
from tests.fixtures.iam import sar_arn_formats

SECRET = "Zanzibar-4111-1111-1111-1111"  # stands for personal data inside a request
ASKED = {"question": f"Who is {SECRET}?", "context": f"{SECRET} lives in Paris, the capital."}


# ---------------------------------------------------------------------------------------- request text


def _http(name: str, body: str | None, **overrides: Any) -> dict[str, Any]:
    event = load(name)
    event.update({"body": body, "isBase64Encoded": False, **overrides})
    return event


SHAPE_EVENTS = {
    "rest": "rest-predict.json",
    "http": "http-api-predict.json",
    "url": "function-url-predict.json",
}

# Every way a request can end, each carrying the secret where the request text would be.
HTTP_PATHS: dict[str, Callable[[str], dict[str, Any]]] = {
    "answered": lambda n: _http(n, json.dumps(ASKED)),
    "invalid_json": lambda n: _http(n, '{"question": "' + SECRET),
    "wrong_type": lambda n: _http(n, json.dumps({**ASKED, "top_k": SECRET})),
    "unknown_field": lambda n: _http(n, json.dumps({**ASKED, "topk": SECRET})),
    "blank_question": lambda n: _http(n, json.dumps({"question": " ", "context": SECRET})),
    "too_large": lambda n: _http(n, json.dumps({"question": SECRET, "context": SECRET * 5000})),
    "not_json": lambda n: _http(n, f"question={SECRET}", headers={"content-type": "text/plain"}),
    "deeply_nested": lambda n: _http(n, "[" * 100_000 + json.dumps(SECRET)),
    "bad_base64": lambda n: _http(n, SECRET, isBase64Encoded=True),
    "engine_refuses": lambda n: _http(n, json.dumps({**ASKED, "max_seq_len": 4000})),
}
DIRECT_PATHS: dict[str, Any] = {
    "answered": ASKED,
    "wrong_type": {**ASKED, "top_k": SECRET},
    "unknown_field": {**ASKED, SECRET: 1},
    "missing_context": {"question": SECRET},
    "not_an_object": [SECRET],
    "engine_refuses": {**ASKED, "max_seq_len": 4000},
}


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Reads everything the function wrote since the last read: its log lines and stdout/stderr.

    The Powertools logger's handler holds the stream it found at import, which pytest's own capture may
    have replaced by then, so it is pointed at a buffer here rather than trusted to reach capfd.
    """
    from handler.observability import logger

    buffer = StringIO()
    previous = logger.registered_handler.setStream(buffer)
    capfd.readouterr()

    def read() -> str:
        out, err = capfd.readouterr()
        text = buffer.getvalue() + out + err
        buffer.seek(0)
        buffer.truncate()
        return text

    yield read
    logger.registered_handler.setStream(previous)


def _assert_not_logged(text: str) -> None:
    assert text, "nothing was written: the check would pass vacuously"
    assert SECRET not in text


@pytest.mark.parametrize("shape", sorted(SHAPE_EVENTS))
@pytest.mark.parametrize("path", sorted(HTTP_PATHS))
def test_http_request_text_is_not_logged(
    bert_app: ModuleType, logs: Callable[[], str], shape: str, path: str
) -> None:
    response = invoke(bert_app, HTTP_PATHS[path](SHAPE_EVENTS[shape]))
    assert response["statusCode"] < 500
    _assert_not_logged(logs())


@pytest.mark.parametrize("path", sorted(DIRECT_PATHS))
def test_direct_request_text_is_not_logged(bert_app: ModuleType, logs: Callable[[], str], path: str) -> None:
    invoke(bert_app, DIRECT_PATHS[path])
    _assert_not_logged(logs())


class _Leaky(Exception):
    """A library error that quotes its input, as some do."""


@pytest.mark.parametrize("shape", [*sorted(SHAPE_EVENTS), "direct"])
def test_internal_errors_log_where_not_what(
    bert_app: ModuleType, logs: Callable[[], str], shape: str
) -> None:
    engine = bert_app.SERVICE.engine
    event = ASKED if shape == "direct" else HTTP_PATHS["answered"](SHAPE_EVENTS[shape])
    logs()
    with mock.patch.object(engine, "encode", side_effect=_Leaky(f"cannot tokenize {ASKED['context']!r}")):
        result = invoke(bert_app, event)
    status = result["error"]["status"] if shape == "direct" else result["statusCode"]
    assert status == 500
    text = logs()
    logged = [json.loads(line) for line in text.splitlines() if line.startswith('{"level"')]
    (record,) = [r for r in logged if r["level"] == "ERROR"]
    assert record["error_type"] == "_Leaky"
    assert any("service.py" in frame for frame in record["frames"]), record["frames"]
    assert SECRET not in text


def test_backend_fault_is_not_logged_with_its_input(bert_app: ModuleType, logs: Callable[[], str]) -> None:
    engine = bert_app.SERVICE.engine
    with mock.patch.object(engine, "backend", FaultyBackend(engine.backend, "raises")):
        assert invoke(bert_app, ASKED)["error"]["status"] == 500
    text = logs()
    assert '"error_type":"RuntimeError"' in text
    _assert_not_logged(text)


@pytest.fixture
def debug_app(app_factory: Callable[..., ModuleType], tiny_bert_dir: Path) -> Iterator[ModuleType]:
    """The function at DEBUG log level, with POWERTOOLS_LOGGER_LOG_EVENT asking for the event."""
    from handler.observability import logger

    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    try:
        yield app_factory(
            MODEL_LOCAL_PATH=str(tiny_bert_dir),
            POWERTOOLS_LOGGER_LOG_EVENT="true",
            POWERTOOLS_LOG_LEVEL="DEBUG",
        )
    finally:
        logger.setLevel(level)


def test_debug_level_and_log_event_still_keep_request_text_out(
    debug_app: ModuleType, logs: Callable[[], str]
) -> None:
    logs()
    invoke(debug_app, ASKED)
    invoke(debug_app, HTTP_PATHS["answered"]("rest-predict.json"))
    invoke(debug_app, HTTP_PATHS["wrong_type"]("http-api-predict.json"))
    invoke(debug_app, HTTP_PATHS["invalid_json"]("function-url-predict.json"))
    _assert_not_logged(logs())


def test_powertools_debug_logging_is_off_by_default(tmp_path: Path) -> None:
    """POWERTOOLS_DEBUG would log every route's arguments (the request): it must stay unset at import."""
    code = (
        "import logging, handler.observability as o\n"
        "print(logging.getLogger('aws_lambda_powertools').isEnabledFor(logging.DEBUG), o.logger.log_level)"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    debug_on, level = out.stdout.split()
    assert debug_on == "False"
    assert int(level) > logging.DEBUG


DEBUG_SWITCHES = re.compile(r"POWERTOOLS_(DEBUG|DEV|LOGGER_LOG_EVENT|EVENT_HANDLER_DEBUG)\b")


def _deploy_files() -> list[Path]:
    files = [ROOT / "Dockerfile", ROOT / "template.yaml", ROOT / "samconfig.toml"]
    return [*files, *sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))]


def test_deploy_config_never_turns_on_payload_logging() -> None:
    checked = [path for path in _deploy_files() if path.is_file()]
    assert {p.name for p in checked} >= {"Dockerfile", "template.yaml"}
    for path in checked:
        match = DEBUG_SWITCHES.search(path.read_text(encoding="utf-8"))
        assert match is None, f"{path.name} sets {match and match.group(0)}"
    level = _template()["Parameters"]["LogLevel"]["Default"]
    assert level != "DEBUG"


# ---------------------------------------------------------------------------------------- secrets

SECRET_PATTERNS = {
    "AWS access key id": re.compile(
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b"
    ),
    "AWS secret access key": re.compile(
        r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "AWS session token": re.compile(r"(?i)aws_?session_?token[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{100,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{34,}\b"),
    "PyPI token": re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    "npm token": re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "bearer token": re.compile(r"(?i)authorization[\"']?\s*[:=]\s*[\"']?bearer\s+[A-Za-z0-9._~+/-]{20,}"),
}


def scan_for_secrets(path: Path) -> list[str]:
    """``file:line: kind`` for each secret-looking string (never the string itself: it may be real)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []  # binary
    found = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        found += [f"{path.name}:{number}: {kind}" for kind, rx in SECRET_PATTERNS.items() if rx.search(line)]
    return found


def test_no_secrets_in_the_repository() -> None:
    names = set(repository_files())
    files = [ROOT / name for name in sorted(names)]
    assert {"Dockerfile", "template.yaml", "handler/app.py", "tests/integration/test_security.py"} <= names
    leaks = [hit for path in files for hit in scan_for_secrets(path)]
    assert not leaks, leaks


# Fake credentials assembled at run time, so this file holds no string the scanner would flag.
PLANTED = {
    "AWS access key id": "aws_access_key_id = " + "AKIA" + "Q" * 16,
    "AWS secret access key": "aws_secret_access_key: " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "0123456789",
    "AWS session token": "AWS_SESSION_TOKEN=" + "FwoGZXIvYXdzE" * 10,
    "private key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
    "GitHub token": "token: " + "ghp_" + "a1" * 18,
    "Hugging Face token": "HF_TOKEN=" + "hf_" + "Ab" * 17,
    "PyPI token": "password = " + "pypi-AgE" + "x" * 60,
    "npm token": "//registry/:_authToken=" + "npm_" + "Z" * 36,
    "Slack token": "SLACK=" + "xoxb-" + "1234567890-abc",
    "Google API key": "key=" + "AIza" + "S" * 35,
    "bearer token": '"Authorization": "' + "Bearer " + "eyJhbGciOiJIUzI1NiJ9.abc" + '"',
}


@pytest.mark.parametrize("kind", sorted(SECRET_PATTERNS))
def test_secret_scanner_finds_each_kind(tmp_path: Path, kind: str) -> None:
    leaky = tmp_path / "leaky.env"
    leaky.write_text(f"# config\n{PLANTED[kind]}\n", encoding="utf-8")
    assert scan_for_secrets(leaky) == [f"leaky.env:2: {kind}"]


def test_secret_scanner_ignores_look_alikes(tmp_path: Path) -> None:
    benign = tmp_path / "benign.py"
    benign.write_text(
        'AWS_SECRET_ACCESS_KEY = "testing"\nkey = "AKIA-not-a-key"\nrole-to-assume: ${{ vars.ROLE }}\n'
        "body: eyJxdWVzdGlvbiI6ICJIb3cgbGFyZ2UifQ==\n"
    )
    assert scan_for_secrets(benign) == []


# ---------------------------------------------------------------------------------------- access


def _template() -> dict[str, Any]:
    parsed, problems = decode_str((ROOT / "template.yaml").read_text(encoding="utf-8"))
    assert not problems, problems
    return parsed


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every IAM policy statement anywhere in the template (function policies, roles, resource policies)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Statement":
                yield from value if isinstance(value, list) else [value]
            else:
                yield from _statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_permission_anywhere_in_the_template() -> None:
    template = _template()
    statements = list(_statements(template["Resources"]))
    assert statements, "no policy statement found: the walk is broken"
    for statement in statements:
        assert statement["Effect"] == "Allow" or statement["Effect"] == "Deny"
        for action in _as_list(statement.get("Action", [])):
            assert action != "*" and not str(action).endswith(":*"), f"wildcard action {action}"
        for resource in _as_list(statement.get("Resource", [])):
            # "*" only where AWS's Service Authorization Reference lists no resource type for every action.
            assert resource != "*" or all(
                sar_arn_formats(action) == ("*",) for action in _as_list(statement["Action"])
            ), f"statement {statement.get('Sid')} applies to every resource"
    text = json.dumps(template)
    assert "ManagedPolicyArns" not in text and "AdministratorAccess" not in text
    assert "NotAction" not in text and "NotResource" not in text


def test_every_entry_point_requires_authentication() -> None:
    template = _template()
    resources = template["Resources"].values()
    kinds = {r["Type"] for r in resources}
    assert "AWS::Lambda::Url" not in kinds, "a function URL would bypass the API's auth and throttling"
    for resource in resources:
        props = resource.get("Properties", {})
        assert "FunctionUrlConfig" not in props
        for event in props.get("Events", {}).values():
            if event["Type"] in ("Api", "HttpApi"):  # an implicit API would get none of the auth below
                assert {"RestApiId", "ApiId"} & set(event["Properties"]), "event on SAM's implicit API"
    (api,) = [r["Properties"] for r in resources if r["Type"] == "AWS::Serverless::Api"]
    for path, methods in api["DefinitionBody"]["paths"].items():
        for method, spec in methods.items():
            _, *branches = spec["security"]["Fn::If"]  # with or without the metering key
            for requirements in branches:
                assert requirements and all("sigv4" in r for r in requirements), (
                    f"{method.upper()} {path} can be called without SigV4"
                )
    for permission in (r for r in resources if r["Type"] == "AWS::Lambda::Permission"):
        assert "SourceArn" in permission["Properties"], "an invoke permission open to any source"


# ---------------------------------------------------------------------------------------- static analysis


def test_bandit_finds_nothing_in_the_handler() -> None:
    """Findings that are not bugs carry an inline ``# nosec BXXX`` with the reason next to them."""
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "handler", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    assert "No module named bandit" not in result.stderr, "install requirements-dev.txt (bandit)"
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Issue:" not in result.stdout
