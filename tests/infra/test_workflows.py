"""The GitHub Actions workflows: what triggers them, what they run, and the deploy smoke test for real.

Schema validity is checked by check-jsonschema (tests/test_infra_lint.py). Here: CI runs every linter and the
tests; deploy uses OIDC, pushes by commit SHA, points Lambda at the digest, and its smoke-test step -- run
below with a stand-in `aws` command -- fails on each kind of bad answer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return _load("ci.yml")


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return _load("deploy.yml")


def test_ci_runs_on_every_push_and_pull_request(ci: dict[str, Any]) -> None:
    assert "push" in ci["on"]
    assert "pull_request" in ci["on"]
    assert (ci["on"]["push"] or {}).get("branches") is None, "every branch, not only main"


@pytest.mark.parametrize(
    "command",
    [
        "ruff check .",
        "ruff format --check .",
        "hadolint Dockerfile",
        "cfn-lint template.yaml",
        "sam validate --lint",
        "check-jsonschema --builtin-schema vendor.github-workflows",
        "python -m pytest",
        "bash scripts/install-sam.sh",
    ],
)
def test_ci_runs_each_check(ci: dict[str, Any], command: str) -> None:
    assert command in _runs(ci)


def test_ci_installs_torch_from_the_cpu_index(ci: dict[str, Any]) -> None:
    runs = _runs(ci)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs
    assert runs.index("download.pytorch.org") < runs.index("scripts/setup.sh"), "CPU torch before the rest"


def test_deploy_runs_on_main_and_by_hand(deploy: dict[str, Any]) -> None:
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in deploy["on"]


def test_deploy_uses_oidc_and_no_stored_aws_keys(deploy: dict[str, Any]) -> None:
    assert deploy["permissions"]["id-token"] == "write"
    (creds,) = [
        s for s in _steps(deploy) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]
    assert creds["with"]["role-to-assume"]
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "secrets." not in text, "no long-lived credentials: everything comes from the OIDC role"
    assert any(s.get("uses", "").startswith("aws-actions/amazon-ecr-login@") for s in _steps(deploy))


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_nothing_uses_latest(name: str) -> None:
    assert not re.search(r":latest\b|@latest\b", (WORKFLOWS / name).read_text())


def test_deploy_pushes_by_sha_and_deploys_by_digest(deploy: dict[str, Any]) -> None:
    runs = _runs(deploy)
    build = next(line for line in runs.splitlines() if "docker buildx build" in line)
    assert "--provenance=false" in build
    assert ':$GITHUB_SHA"' in runs and "--push" in runs
    update = re.search(r"aws lambda update-function-code .*--image-uri \"\$(\w+)\"", runs)
    assert update, "update-function-code --image-uri not found"
    image_uri = next(s["env"][update[1]] for s in _steps(deploy) if update[1] in s.get("env", {}))
    producer = next(s for s in _steps(deploy) if s.get("id") == re.search(r"steps\.(\w+)\.", image_uri)[1])
    assert 'echo "uri=$repo@$digest"' in producer["run"], "the function must get repo@sha256:..., not a tag"
    assert "aws lambda wait function-updated" in runs
    assert runs.index("wait function-updated") < runs.index("lambda invoke") < runs.index("update-alias")


def _smoke_step(deploy: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in _steps(deploy) if s.get("id") == "smoke")


def test_smoke_test_uses_the_sample_direct_event(deploy: dict[str, Any]) -> None:
    event_path = deploy["env"]["SMOKE_EVENT"]
    assert "$SMOKE_EVENT" in _smoke_step(deploy)["run"]
    event = json.loads((ROOT / event_path).read_text())
    assert isinstance(event["question"], str) and isinstance(event["context"], str)


def _run_smoke(
    deploy: dict[str, Any], tmp_path: Path, body: Any, meta: dict[str, Any]
) -> subprocess.CompletedProcess:
    """Runs the smoke step's script as Actions would (bash -eo pipefail) with a fake `aws` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aws"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'echo "$@" >> "$FAKE_LOG"\n'
        'printf "%s" "$FAKE_BODY" > "${@: -1}"\n'  # aws lambda invoke ... OUTFILE
        'printf "%s" "$FAKE_META"\n'
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        **{k: str(v) for k, v in deploy["env"].items() if "${{" not in str(v)},
        "FUNCTION_NAME": "qa-fn",
        "VERSION": "7",
        "RUNNER_TEMP": str(tmp_path),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "aws.log"),
        "FAKE_BODY": body if isinstance(body, str) else json.dumps(body),
        "FAKE_META": json.dumps(meta),
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _smoke_step(deploy)["run"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _good_answer(deploy: dict[str, Any]) -> dict[str, Any]:
    context = json.loads((ROOT / deploy["env"]["SMOKE_EVENT"]).read_text())["context"]
    word = re.search(r"\w+", context[len(context) // 2 :])
    start = len(context) // 2 + word.start()
    return {"answer": word[0], "score": 0.9, "start": start, "end": start + len(word[0])}


def test_smoke_test_passes_a_consistent_answer(deploy: dict[str, Any], tmp_path: Path) -> None:
    result = _run_smoke(deploy, tmp_path, _good_answer(deploy), {"StatusCode": 200, "ExecutedVersion": "7"})
    assert result.returncode == 0, result.stdout + result.stderr
    invoked = (tmp_path / "aws.log").read_text()
    assert "lambda invoke --function-name qa-fn --qualifier 7" in invoked
    assert f"fileb://{deploy['env']['SMOKE_EVENT']}" in invoked


@pytest.mark.parametrize(
    ("case", "mutate", "meta"),
    [
        (
            "function error",
            lambda a: {"errorMessage": "boom", "errorType": "X"},
            {"FunctionError": "Unhandled"},
        ),
        ("error body", lambda a: {"error": {"type": "model_unavailable", "status": 503}}, {}),
        ("empty answer", lambda a: {**a, "answer": "", "end": a["start"]}, {}),
        ("blank answer", lambda a: {**a, "answer": "   "}, {}),
        ("wrong offsets", lambda a: {**a, "start": a["start"] + 1, "end": a["end"] + 1}, {}),
        ("missing offsets", lambda a: {"answer": a["answer"], "score": 0.5}, {}),
        ("not json", lambda a: "Task timed out", {}),
    ],
)
def test_smoke_test_fails_a_bad_answer(
    deploy: dict[str, Any], tmp_path: Path, case: str, mutate, meta
) -> None:
    body = mutate(_good_answer(deploy))
    result = _run_smoke(deploy, tmp_path, body, {"StatusCode": 200, **meta})
    assert result.returncode != 0, f"{case}: smoke test passed: {result.stdout}"
    assert "smoke test failed" in result.stdout
