"""update-function.yml (the update-function-code path) and deploy.yml's after-deploy steps, read as data."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.fixtures import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


@pytest.fixture(scope="module")
def update() -> dict[str, Any]:
    return _load("update-function.yml")


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return _load("deploy.yml")


def _job(workflow: dict[str, Any]) -> dict[str, Any]:
    (job,) = workflow["jobs"].values()
    return job


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _job(workflow)["steps"])


def test_same_ci_gate_environment_and_oidc_as_the_sam_path(update: dict, deploy: dict) -> None:
    assert update["on"] == deploy["on"]
    assert update["permissions"] == deploy["permissions"] == {"id-token": "write", "contents": "read"}
    for condition in re.findall(r"github\.event\.workflow_run\.[\w.]+ == [^&|)]+", _job(deploy)["if"]):
        assert condition.strip() in _job(update)["if"], condition
    assert _job(update)["environment"]["name"] == _job(deploy)["environment"]["name"] == "production"
    assert "secrets." not in (WORKFLOWS / "update-function.yml").read_text()


def test_it_runs_only_where_a_function_is_named(update: dict) -> None:
    assert _job(update)["if"].startswith("vars.UPDATE_FUNCTION_NAME != ''")


def test_actions_are_the_ones_already_pinned() -> None:
    """No new SHA: each action line is one ci.yml or deploy.yml already uses."""
    pinned = {
        line.strip().removeprefix("- ")
        for name in ("ci.yml", "deploy.yml")
        for line in (WORKFLOWS / name).read_text().splitlines()
        if "uses:" in line
    }
    used = [
        line.strip().removeprefix("- ")
        for line in (WORKFLOWS / "update-function.yml").read_text().splitlines()
        if "uses:" in line
    ]
    assert used and set(used) <= pinned


def test_builds_for_the_functions_architecture_and_ships_by_digest(update: dict) -> None:
    runs = _runs(update)
    assert "python -m qa_tools.update_function platform" in runs
    build = next(line for line in runs.splitlines() if "docker buildx build" in line)
    assert '--platform "$PLATFORM"' in build and "--provenance=false" in build
    assert '"$REPOSITORY@$digest"' in runs or "$REPOSITORY@$digest" in runs
    assert "python -m qa_tools.update_function update" in runs and '--image-uri "$IMAGE_URI"' in runs
    # The alias moves inside the module, after its smoke questions; never from the shell.
    for forbidden in ("update-alias", "publish-version", "aws lambda update-function-code", "sam deploy"):
        assert forbidden not in runs


def test_boto3_is_the_images_pin(update: dict) -> None:
    assert "grep '^boto3==' requirements-onnx.txt" in _runs(update)
    assert re.search(r"^boto3==\d", (ROOT / "requirements-onnx.txt").read_text(), re.M)


def test_deploy_smoke_tests_through_the_api_and_bounds_the_images(deploy: dict) -> None:
    names = [step.get("name", "") for step in _job(deploy)["steps"]]
    runs = _runs(deploy)
    assert "python -m qa_tools.smoke" in runs and "ApiUrl" in runs
    assert "file://iam/ecr-lifecycle-policy.json" in runs and "scripts/sam_names.py" in runs
    assert names.index("sam deploy") < names.index("Smoke test through the API") < names.index("Summary")


def test_scripts_and_modules_the_workflows_run_exist() -> None:
    for name in ("deploy.yml", "update-function.yml"):
        text = (WORKFLOWS / name).read_text()
        for script in re.findall(r"(scripts/[\w.-]+\.py)", text):
            assert (ROOT / script).is_file(), script
        for module in re.findall(r"python -m (qa_tools\.[\w.]+)", text):
            assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), module
