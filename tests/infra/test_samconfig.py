"""samconfig.toml as SAM CLI reads it (its own config loader): one set of template parameters for every command.

`sam build` picks the image (ImageVariant, Architecture), `sam deploy` configures the function with the same
names, and `sam local invoke` resolves MODEL_S3_URI from ModelBucket/ModelPrefix. If any command saw other
values (what `sam deploy --guided` causes by copying them into the deploy section), an image could be
deployed on the wrong architecture or local calls could not find the model: CI fails here before a deploy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from tests.fixtures import ROOT
from tests.fixtures.sam import run_with_sam

IMAGE_PARAMETERS = ("ImageVariant", "Architecture")


SCRIPT = ROOT / "scripts" / "samconfig.py"


def read_config(project: Path, *args: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    result = run_with_sam(SCRIPT, *args, str(project))
    assert result.stdout, result.stderr
    return json.loads(result.stdout), result


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    config, result = read_config(ROOT, "--check")
    assert result.returncode == 0, result.stderr
    return config


@pytest.fixture(scope="module")
def parameters() -> dict[str, Any]:
    template, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return template["Parameters"]


def test_every_command_sees_the_same_template_parameters(config: dict[str, Any], parameters: dict) -> None:
    assert config["drift"] == []
    overrides = config["commands"]["build"]["parameter_overrides"]
    assert set(overrides) <= set(parameters), "a name that is not a template parameter is a typo"
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    assert required <= set(overrides), "a parameter without a default must be set for every command"
    for name in IMAGE_PARAMETERS:
        assert overrides[name] in parameters[name]["AllowedValues"]


def test_guided_style_drift_is_detected(tmp_path: Path) -> None:
    """What `sam deploy --guided` leaves behind, then an edit of the global list only."""
    for name in ("samconfig.toml", "template.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    config = (tmp_path / "samconfig.toml").read_text()
    config = config.replace('"Architecture=x86_64"', '"Architecture=arm64"')
    config = config.replace(
        "[default.deploy.parameters]\n",
        '[default.deploy.parameters]\nparameter_overrides = "ImageVariant=onnx Architecture=x86_64 '
        'ModelBucket=my-models ModelPrefix=models/roberta-base-squad2/"\n',
    )
    (tmp_path / "samconfig.toml").write_text(config)
    drifted, result = read_config(tmp_path, "--check")
    assert drifted["drift"] == ["deploy"]
    assert result.returncode == 1
    assert "deploy would use other template parameters" in result.stderr


def test_local_invoke_resolves_the_model_location_from_the_shared_list(config: dict[str, Any]) -> None:
    """The original defect: local invoke saw no ModelBucket and every call was a 503."""
    overrides = config["commands"]["local invoke"]["parameter_overrides"]
    expected = f"s3://{overrides['ModelBucket']}/{overrides['ModelPrefix']}"
    assert config["local_invoke_environment"]["MODEL_S3_URI"] == expected


def test_sam_build_uses_buildkit(config: dict[str, Any]) -> None:
    assert config["commands"]["build"]["use_buildkit"] is True


def test_deploy_may_create_the_stacks_roles_and_image_repository(config: dict[str, Any]) -> None:
    deploy = config["commands"]["deploy"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_image_repos"] is True


def test_local_start_lambda_keeps_its_container_warm(config: dict[str, Any]) -> None:
    assert config["commands"]["local start-lambda"]["warm_containers"] in ("LAZY", "EAGER")
