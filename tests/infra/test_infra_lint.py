"""The real linters, run as tests: a finding fails the build.

hadolint (Dockerfile), cfn-lint and `sam validate` (template.yaml: lint, and SAM's own transform), and
check-jsonschema with its vendored GitHub-workflow schema. Each also gets a known-bad input, so a linter that
silently checks nothing fails here too. A missing tool fails with the command that installs it.

Every run is offline and credential-free by construction: AWS credentials and config are hidden, instance
metadata is off, and any HTTP(S) attempt goes to a closed loopback port and fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import ROOT
from tests.fixtures.sam import SAM_INSTALL, SAM_VENV

DEV_INSTALL = "pip install -r requirements-dev.txt"
CLOSED_PORT = "http://127.0.0.1:9"  # discard port, nothing listens: a network attempt fails fast


def _tool(name: str, install: str = DEV_INSTALL) -> str:
    """The tool next to this interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `{install}`")
    return found


def _sam() -> str:
    sam = SAM_VENV / "bin" / "sam"
    if not sam.exists():
        pytest.fail(f"SAM CLI not found at {sam}: run `{SAM_INSTALL}`")
    return str(sam)


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.upper() not in ("NO_PROXY",)}
    env.update(
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        HTTP_PROXY=CLOSED_PORT,
        HTTPS_PROXY=CLOSED_PORT,
        http_proxy=CLOSED_PORT,
        https_proxy=CLOSED_PORT,
        HOME=str(tmp_path),  # SAM CLI writes its metadata under ~/.aws-sam
    )
    return env


def _run(args: list[str], tmp_path: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=_offline_env(tmp_path), capture_output=True, text=True, timeout=300, check=False
    )


def _assert_clean(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} found problems:\n{result.stdout}\n{result.stderr}"
    )


def test_hadolint_passes(tmp_path: Path) -> None:
    _assert_clean(_run([_tool("hadolint"), "Dockerfile"], tmp_path))


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    result = _run([_tool("hadolint"), str(bad)], tmp_path)
    assert result.returncode != 0
    assert "DL3013" in result.stdout and "DL3006" in result.stdout


def test_cfn_lint_passes(tmp_path: Path) -> None:
    _assert_clean(_run([_tool("cfn-lint"), "template.yaml"], tmp_path))


def test_cfn_lint_flags_a_bad_template(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text((ROOT / "template.yaml").read_text().replace("Tracing: Active", "Tracing: Sometimes"))
    result = _run([_tool("cfn-lint"), str(bad)], tmp_path)
    assert result.returncode != 0
    assert "Sometimes" in result.stdout


def test_sam_validate_lint_passes(tmp_path: Path) -> None:
    _assert_clean(_run([_sam(), "validate", "--lint", "--template-file", "template.yaml"], tmp_path))


def test_sam_transform_passes(tmp_path: Path) -> None:
    """Plain `sam validate` runs the SAM translator itself (cfn-lint validates SAM syntax without it)."""
    _assert_clean(
        _run([_sam(), "validate", "--region", "us-east-1", "--template-file", "template.yaml"], tmp_path)
    )


def test_sam_transform_flags_a_bad_template(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text(
        (ROOT / "template.yaml").read_text().replace("AutoPublishAlias: live", "AutoPublishAlias: 7")
    )
    result = _run([_sam(), "validate", "--region", "us-east-1", "--template-file", str(bad)], tmp_path)
    assert result.returncode != 0
    assert "AutoPublishAlias" in result.stdout + result.stderr


_RESOLVE_BUILD_METADATA = """
import json, sys
from samcli.commands._utils.template import get_template_data
from samcli.lib.providers.provider import Stack
from samcli.lib.providers.sam_function_provider import SamFunctionProvider

for case in sys.argv[1:]:
    overrides = dict(arg.split("=", 1) for arg in case.split(","))
    stack = Stack("", "", "template.yaml", overrides, get_template_data("template.yaml"))
    function = SamFunctionProvider([stack]).get("QaFunction")
    print(json.dumps({"metadata": function.metadata, "architectures": function.architectures}))
"""


def test_sam_build_resolves_the_image_variant(tmp_path: Path) -> None:
    """What `sam build --parameter-overrides` hands to docker build: the chosen target and platform.

    CloudFormation never builds images; SAM CLI resolves the Refs in the function's Metadata itself.
    """
    cases = [("torch", "x86_64"), ("onnx", "arm64")]
    args = [f"ImageVariant={variant},Architecture={arch}" for variant, arch in cases]
    python = str(Path(_sam()).parent / "python")  # the SAM CLI venv: fails with the install command if absent
    result = _run([python, "-c", _RESOLVE_BUILD_METADATA, *args], tmp_path)
    _assert_clean(result)
    resolved = [json.loads(line) for line in result.stdout.strip().splitlines()[-len(cases) :]]
    for (variant, arch), got in zip(cases, resolved, strict=True):
        assert got["metadata"]["DockerBuildTarget"] == variant
        assert got["metadata"]["DockerTag"] == variant
        assert got["architectures"] == [arch]


def test_workflows_match_the_github_schema(tmp_path: Path) -> None:
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) >= 2
    _assert_clean(
        _run([_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows], tmp_path)
    )


def test_check_jsonschema_flags_a_bad_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  build:\n    steps:\n      - run: echo\n")  # no runs-on
    result = _run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)], tmp_path
    )
    assert result.returncode != 0
    assert "runs-on" in result.stdout + result.stderr


def _template_with(tmp_path: Path, **defaults: str) -> Path:
    """A copy of template.yaml whose parameters default to ``defaults``: the optional blocks switched on."""
    text = (ROOT / "template.yaml").read_text()
    for name, value in defaults.items():
        block = re.compile(rf"(^  {name}:\n(?:    .*\n)*?    Default: ).*$", re.MULTILINE)
        text, found = block.subn(rf'\g<1>"{value}"', text, count=1)
        assert found == 1, f"parameter {name} has no Default in template.yaml"
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


# cfn-lint does not look inside a SAM state machine's Definition: tests/infra/test_bulk_template.py does.
OPTIONAL_BLOCKS = {
    "snapstart-on": {"SnapStart": "On", "EphemeralStorageSize": "512"},
    "bulk-jobs-on": {"BulkJobs": "Enabled"},
    "all-on": {"SnapStart": "On", "EphemeralStorageSize": "512", "BulkJobs": "Enabled"},
    # The other choices the docs offer: API key + provisioned concurrency, the torch image on Graviton with
    # exact fp32, bulk jobs on their own bucket.
    "api-key-provisioned": {"ApiKeyRequired": "true", "ProvisionedConcurrency": "2"},
    "torch-arm64-fp32": {"ImageVariant": "torch", "Architecture": "arm64", "OnnxPrecision": "fp32"},
    "bulk-own-bucket": {"BulkJobs": "Enabled", "BulkBucket": "my-bulk-jobs", "LogLevel": "DEBUG"},
}


@pytest.mark.parametrize("blocks", sorted(OPTIONAL_BLOCKS))
def test_template_lints_and_transforms_with_optional_blocks_on(tmp_path: Path, blocks: str) -> None:
    path = str(_template_with(tmp_path, **OPTIONAL_BLOCKS[blocks]))
    _assert_clean(_run([_tool("cfn-lint"), path], tmp_path))
    _assert_clean(_run([_sam(), "validate", "--lint", "--template-file", path], tmp_path))
    _assert_clean(_run([_sam(), "validate", "--region", "us-east-1", "--template-file", path], tmp_path))
