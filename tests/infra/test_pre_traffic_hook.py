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


# The self-check of a version whose manifest has no golden answers (handler.api.self_check).
NO_GOLDEN = {
    "self_check": {"variant": "onnx-int8", "cpu": "x", "passed": None, "reason": "no golden answers"}
}


def _stream(body: Any) -> StreamingBody:
    payload = (body if isinstance(body, str) else json.dumps(body)).encode()
    return StreamingBody(io.BytesIO(payload), len(payload))


def _run(
    hook: ModuleType,
    *,
    live: str = "7",
    answer: Any = None,
    meta: dict | None = None,
    self_check: Any = None,
) -> dict:
    """Runs the handler against stubs: the alias on ``live``, the new version answering ``answer`` and then,
    when given, ``self_check`` to the self-check event."""
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
                    "Payload": _stream(answer),
                },
                {"FunctionName": f"{FUNCTION_ARN}:{NEW}", "Payload": _expected_payload(hook)},
            )
        if self_check is not None:
            lam.add_response(
                "invoke",
                {"StatusCode": 200, "ExecutedVersion": NEW, "Payload": _stream(self_check)},
                {
                    "FunctionName": f"{FUNCTION_ARN}:{NEW}",
                    "Payload": json.dumps({"self_check": hook.SELF_CHECK}),
                },
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
    result = _run(hook, answer=_good(hook), self_check=NO_GOLDEN)
    assert result == {"status": "Succeeded", "problem": None}


def _golden_report(same: int, count: int = 64, threshold: float = 0.95) -> dict[str, Any]:
    report = {"variant": "onnx-int8", "cpu": "AMD EPYC 7R32", "int8": ["avx2"], "int8_path": "AVX2 only"}
    return {
        "self_check": {**report, "same_span": same, "count": count, "threshold": threshold, "passed": True}
    }


def test_golden_answers_at_the_threshold_let_traffic_through(hook: ModuleType) -> None:
    result = _run(hook, answer=_good(hook), self_check=_golden_report(61))  # 61/64 = 95.3 %
    assert result == {"status": "Succeeded", "problem": None}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # The hook judges from the counts and the threshold, not from the function's own verdict.
        (_golden_report(60), "60/64 golden answers with the same span on AMD EPYC 7R32 (AVX2 only)"),
        ({"error": {"type": "time_budget_exceeded", "status": 503}}, "did not report"),
        ("Task timed out after 28.00 seconds", "did not report"),
    ],
)
def test_golden_answers_below_the_threshold_fail_the_deployment(
    hook: ModuleType, body: Any, reason: str
) -> None:
    result = _run(hook, answer=_good(hook), self_check=body)
    assert result["status"] == "Failed"
    assert reason in result["problem"]


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
