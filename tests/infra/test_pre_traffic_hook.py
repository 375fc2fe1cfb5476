"""The CodeDeploy pre-traffic hook (template.yaml, PreTrafficHook's InlineCode), run here with stubbed clients.

It is what keeps a bad build from taking traffic: each kind of bad answer must report Failed, a good one
Succeeded, and a status must be reported whatever happens (CodeDeploy otherwise waits an hour).
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from cfnlint.decode import decode_str

from tests.fixtures import ROOT

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:extractive-qa-QaFunction-abc"
NEW = "8"
EVENT = {"DeploymentId": "d-EXAMPLE", "LifecycleEventHookExecutionId": "hook-execution-1"}


def _codedeploy_ids() -> dict[str, str]:
    return {
        "deploymentId": EVENT["DeploymentId"],
        "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
    }


def _source() -> str:
    template, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return template["Resources"]["PreTrafficHook"]["Properties"]["InlineCode"]


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The hook imported as Lambda would (index.py), with dummy credentials and NEW_VERSION set."""
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NEW_VERSION": f"{FUNCTION_ARN}:{NEW}",
    }.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "index.py"
    path.write_text(_source())
    spec = importlib.util.spec_from_file_location("pre_traffic_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(hook: ModuleType, *, live: str = "7", answer: Any = None, meta: dict | None = None) -> dict:
    """Runs the handler against stubs: the alias on ``live``, the new version answering ``answer``."""
    payload = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
    reported: list[str] = []
    with Stubber(hook.LAMBDA) as lam, Stubber(hook.CODEDEPLOY) as deploy:
        lam.add_response(
            "get_alias", {"FunctionVersion": live}, {"FunctionName": FUNCTION_ARN, "Name": "live"}
        )
        if live != NEW:
            lam.add_response(
                "invoke",
                {
                    "StatusCode": 200,
                    "ExecutedVersion": NEW,
                    **(meta or {}),
                    "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
                },
                {"FunctionName": f"{FUNCTION_ARN}:{NEW}", "Payload": _expected_payload(hook)},
            )

        hook.CODEDEPLOY.meta.events.register(
            "provide-client-params.codedeploy.PutLifecycleEventHookExecutionStatus",
            lambda params, **_: reported.append(params["status"]),
        )
        deploy.add_response(
            "put_lifecycle_event_hook_execution_status", {}, {**_codedeploy_ids(), "status": ANY}
        )
        result = hook.handler(EVENT, None)
        lam.assert_no_pending_responses()
        deploy.assert_no_pending_responses()
    assert reported == [result["status"]], "the status returned is the status reported to CodeDeploy"
    return result


def _expected_payload(hook: ModuleType) -> str:
    return json.dumps({"question": hook.QUESTION, "context": hook.CONTEXT})


def _good(hook: ModuleType) -> dict[str, Any]:
    start = hook.CONTEXT.index("Berlin")
    return {"answer": "Berlin", "score": 0.9, "start": start, "end": start + len("Berlin")}


def test_a_consistent_answer_from_the_new_version_lets_traffic_through(hook: ModuleType) -> None:
    result = _run(hook, answer=_good(hook))
    assert result == {"status": "Succeeded", "problem": None}


@pytest.mark.parametrize(
    ("case", "mutate", "meta", "reason"),
    [
        (
            "function error",
            lambda a: {"errorMessage": "boom"},
            {"FunctionError": "Unhandled"},
            "function error",
        ),
        ("error body", lambda a: {"error": {"type": "model_unavailable", "status": 503}}, {}, "error"),
        ("empty answer", lambda a: {**a, "answer": "", "end": a["start"]}, {}, "empty answer"),
        ("blank answer", lambda a: {**a, "answer": "  "}, {}, "empty answer"),
        ("wrong offsets", lambda a: {**a, "start": a["start"] + 1, "end": a["end"] + 1}, {}, "offsets"),
        ("missing offsets", lambda a: {"answer": a["answer"]}, {}, "offsets"),
        ("not JSON", lambda a: "Task timed out after 28.00 seconds", {}, "not a JSON object"),
        ("another version answered", lambda a: a, {"ExecutedVersion": "7"}, "version 7 answered"),
    ],
)
def test_a_bad_answer_fails_the_deployment(
    hook: ModuleType, case: str, mutate: Any, meta: dict, reason: str
) -> None:
    result = _run(hook, answer=mutate(_good(hook)), meta=meta)
    assert result["status"] == "Failed", case
    assert reason in result["problem"]


def test_a_hook_still_pointing_at_the_live_version_fails_instead_of_testing_it(hook: ModuleType) -> None:
    result = _run(hook, live=NEW)
    assert result["status"] == "Failed"
    assert "already live" in result["problem"]


def test_an_exception_is_still_reported_as_failed(hook: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEW_VERSION")
    with Stubber(hook.CODEDEPLOY) as deploy:
        deploy.add_response(
            "put_lifecycle_event_hook_execution_status",
            {},
            {**_codedeploy_ids(), "status": "Failed"},
        )
        result = hook.handler(EVENT, None)
        deploy.assert_no_pending_responses()
    assert result["status"] == "Failed" and "KeyError" in result["problem"]


def _codedeploy_ids() -> dict[str, str]:
    return {
        "deploymentId": EVENT["DeploymentId"],
        "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
    }


def test_the_hook_source_meets_the_projects_lint_rules(tmp_path: Path) -> None:
    path = tmp_path / "index.py"
    path.write_text(_source())
    ruff = str(Path(sys.executable).parent / "ruff")
    for args in (["check"], ["format", "--check", "--diff"]):
        result = subprocess.run(
            [ruff, *args, "--config", str(ROOT / "pyproject.toml"), str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
