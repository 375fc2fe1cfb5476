"""The GitHub Actions workflows: what triggers them, what they run, and what the deploy may and may not do.

Schema validity is checked by check-jsonschema (tests/infra/test_infra_lint.py). Here: CI runs every linter,
the tests, and the onnx image's tests on Python 3.12; deploy runs only after a green CI run of main, behind a
`production` environment, with OIDC credentials, through `sam build` + `sam deploy` (CloudFormation stays the
only owner of the live alias), with flags this SAM CLI knows; every action is pinned to a commit SHA.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.fixtures import ROOT
from tests.fixtures.sam import SAM_INSTALL, SAM_VENV

WORKFLOWS = ROOT / ".github" / "workflows"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _load(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def _steps(workflow: dict[str, Any], job: str | None = None) -> list[dict[str, Any]]:
    jobs = [workflow["jobs"][job]] if job else workflow["jobs"].values()
    return [step for j in jobs for step in j["steps"]]


def _runs(workflow: dict[str, Any], job: str | None = None) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow, job))


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
        "mkdocs build --strict",
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


def test_ci_tests_the_onnx_image_on_its_python(ci: dict[str, Any]) -> None:
    """The onnx image runs Python 3.12 (Dockerfile: public.ecr.aws/lambda/python:3.12) without torch."""
    base = (ROOT / "Dockerfile").read_text()
    image_python = re.search(r"public\.ecr\.aws/lambda/python:(3\.\d+)", base)[1]
    (job,) = [name for name in ci["jobs"] if "bash scripts/test-onnx.sh" in _runs(ci, name)]
    setup = next(s for s in _steps(ci, job) if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == image_python
    assert "scripts/setup.sh" not in _runs(ci, job), "that job must not install the torch dev environment"


def test_deploy_runs_only_after_ci_passed_on_main(ci: dict[str, Any], deploy: dict[str, Any]) -> None:
    assert set(deploy["on"]) == {"workflow_run"}, "no other trigger may bypass CI"
    trigger = deploy["on"]["workflow_run"]
    assert trigger["workflows"] == [ci["name"]]
    assert trigger["types"] == ["completed"] and trigger["branches"] == ["main"]
    (job,) = deploy["jobs"].values()
    condition = " ".join(job["if"].split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.head_repository.full_name == github.repository" in condition, (
        "a fork's pull request can have a branch called main"
    )
    assert "'pull_request'" not in condition
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}", "deploy what CI tested"


def test_deploy_waits_for_the_production_environment(deploy: dict[str, Any]) -> None:
    (job,) = deploy["jobs"].values()
    assert job["environment"]["name"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_deploy_uses_oidc_and_no_stored_aws_keys(deploy: dict[str, Any]) -> None:
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    (creds,) = [
        s for s in _steps(deploy) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]
    assert creds["with"]["role-to-assume"]
    assert not {"aws-access-key-id", "aws-secret-access-key"} & set(creds["with"])
    assert "secrets." not in (WORKFLOWS / "deploy.yml").read_text()


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml"])
def test_every_action_is_pinned_to_a_commit(name: str) -> None:
    workflow = _load(name)
    uses = [s["uses"] for s in _steps(workflow) if "uses" in s]
    assert uses
    for action in uses:
        assert SHA_PINNED.match(action), f"{action}: pin it to a commit SHA (a tag can be moved)"
    text = (WORKFLOWS / name).read_text()
    for line in (line for line in text.splitlines() if "uses:" in line):
        assert re.search(r"@[0-9a-f]{40} # v\d", line), f"say which release the SHA is: {line.strip()}"


def test_deploy_goes_through_cloudformation_only(deploy: dict[str, Any]) -> None:
    """The alias has one owner: CloudFormation (with CodeDeploy's pre-traffic hook). The workflow never moves
    it, never publishes versions and never changes the function's code behind the stack's back."""
    runs = _runs(deploy)
    for forbidden in (
        "update-alias",
        "publish-version",
        "update-function-code",
        "update-function-configuration",
    ):
        assert forbidden not in runs
    build, deploy_ = runs.index(".sam-venv/bin/sam build"), runs.index(".sam-venv/bin/sam deploy")
    assert runs.index("scripts/samconfig.py --check") < build < deploy_
    assert "--parameter-overrides" not in runs, "it would replace samconfig.toml's list for that command"


def _sam_options(command: str) -> set[str]:
    sam = SAM_VENV / "bin" / "sam"
    if not sam.exists():
        pytest.fail(f"SAM CLI not found at {sam}: run `{SAM_INSTALL}`")
    env = {"PATH": "/usr/bin:/bin", "SAM_CLI_TELEMETRY": "0", "HOME": str(ROOT)}
    result = subprocess.run(
        [str(sam), command, "--help"], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    return set(re.findall(r"--[a-z][a-z-]+", result.stdout))


def test_deploy_uses_only_flags_this_sam_cli_has(deploy: dict[str, Any]) -> None:
    for line in _runs(deploy).replace("\\\n", " ").splitlines():
        match = re.search(r"\.sam-venv/bin/sam (build|deploy)\b(.*)", line)
        if match:
            used, known = set(re.findall(r"--[a-z][a-z-]+", match[2])), _sam_options(match[1])
            assert used <= known, f"sam {match[1]}: unknown {used - known}"


def test_deploy_reads_what_it_needs_from_the_repository(deploy: dict[str, Any]) -> None:
    """Repository variables only say where (region, roles); what is built and deployed is in the commit."""
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert set(re.findall(r"vars\.(\w+)", text)) == {
        "AWS_REGION",
        "AWS_DEPLOY_ROLE_ARN",
        "CLOUDFORMATION_ROLE_ARN",
    }


def test_scripts_used_by_the_workflows_exist() -> None:
    for name in ("ci.yml", "deploy.yml"):
        for script in re.findall(r"(scripts/[\w.-]+)", (WORKFLOWS / name).read_text()):
            assert (ROOT / script).is_file(), f"{name} runs {script}, which does not exist"
