"""template.yaml, read as data: what the stack grants, sizes and exposes.

cfn-lint and `sam validate` (tests/test_infra_lint.py) check that it is valid; these tests check the
project's decisions: least-privilege S3 access, sizing defaults, the API contract and its auth switch, and
that the pieces agree with each other (Dockerfile targets, handler settings, samconfig.toml).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from handler.settings import Settings
from tests.fixtures import ROOT
from tests.fixtures.dockerfile import RUNTIME_TARGETS, parse_dockerfile

API_GATEWAY_TIMEOUT_S = 29  # REST API integration timeout (default quota)
MB_PER_VCPU = 1769  # Lambda allocates CPU in proportion to memory
REFERENCE_MODEL_MB = 500  # deepset/roberta-base-squad2 safetensors


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return parsed


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    (name,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"]
    return template["Resources"][name]


@pytest.fixture(scope="module")
def api(template: dict[str, Any]) -> dict[str, Any]:
    (name,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Api"]
    return template["Resources"][name]["Properties"]


def _default(template: dict[str, Any], name: str) -> int:
    return int(template["Parameters"][name]["Default"])


def test_function_is_an_image_sam_can_build(function: dict[str, Any]) -> None:
    assert function["Properties"]["PackageType"] == "Image"
    metadata = function["Metadata"]
    assert (ROOT / metadata["DockerContext"] / metadata["Dockerfile"]).is_file()
    assert metadata["DockerTag"] != "latest"


def test_image_variant_parameter_selects_a_dockerfile_target(template: dict, function: dict) -> None:
    assert function["Metadata"]["DockerBuildTarget"] == {"Ref": "ImageVariant"}
    variants = template["Parameters"]["ImageVariant"]["AllowedValues"]
    assert sorted(variants) == sorted(RUNTIME_TARGETS)
    assert set(variants) <= set(parse_dockerfile().stages)


def test_sizing_defaults_fit_roberta_base_on_cpu(template: dict[str, Any], function: dict[str, Any]) -> None:
    props = function["Properties"]
    assert props["MemorySize"] == {"Ref": "MemorySize"}
    assert _default(template, "MemorySize") >= 2 * MB_PER_VCPU, "at least 2 vCPUs for a 125M-parameter model"
    assert props["EphemeralStorage"] == {"Size": {"Ref": "EphemeralStorageSize"}}
    assert _default(template, "EphemeralStorageSize") >= 2 * REFERENCE_MODEL_MB
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert sorted(template["Parameters"]["Architecture"]["AllowedValues"]) == ["arm64", "x86_64"]
    assert props["Tracing"] == "Active"


def test_timeout_ends_before_api_gateway_gives_up(api: dict[str, Any], function: dict[str, Any]) -> None:
    timeout = function["Properties"]["Timeout"]
    assert 0 < timeout < API_GATEWAY_TIMEOUT_S
    for route in _routes(api).values():
        integration = route["x-amazon-apigateway-integration"]
        assert timeout * 1000 < integration["timeoutInMillis"] <= API_GATEWAY_TIMEOUT_S * 1000


def test_provisioned_concurrency_is_optional_on_an_alias(template: dict, function: dict) -> None:
    props = function["Properties"]
    assert props["AutoPublishAlias"]
    condition, when_on, when_off = props["ProvisionedConcurrencyConfig"]["Fn::If"]
    assert when_on == {"ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}}
    assert when_off == {"Ref": "AWS::NoValue"}
    assert "ProvisionedConcurrency" in str(template["Conditions"][condition])
    assert _default(template, "ProvisionedConcurrency") == 0


def test_function_reads_only_the_model_prefix(function: dict[str, Any]) -> None:
    policies = function["Properties"]["Policies"]
    assert all(isinstance(p, dict) and "Statement" in p for p in policies), (
        "no managed or SAM policy templates"
    )
    statements = [s for p in policies for s in p["Statement"]]
    assert {s["Effect"] for s in statements} == {"Allow"}
    by_action = {s["Action"]: s for s in statements}
    assert set(by_action) == {"s3:GetObject", "s3:ListBucket"}
    get = by_action["s3:GetObject"]["Resource"]["Fn::Sub"]
    assert get.endswith(":s3:::${ModelBucket}/${ModelPrefix}*")
    listing = by_action["s3:ListBucket"]
    assert listing["Resource"]["Fn::Sub"].endswith(":s3:::${ModelBucket}")
    assert listing["Condition"]["StringLike"]["s3:prefix"] == {"Fn::Sub": "${ModelPrefix}*"}


def variables_read_by_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    """The environment variables ``Settings.from_env`` looks up, for every backend the images set."""
    read: set[str] = set()

    class Recording(dict):  # type: ignore[type-arg]
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    (tmp_path / "config.json").write_text("{}")
    for backend in RUNTIME_TARGETS:
        env = Recording(os.environ, QA_BACKEND=backend, MODEL_LOCAL_PATH=str(tmp_path))
        monkeypatch.setattr(os, "environ", env)
        Settings.from_env()
    return read


def test_environment_names_are_ones_the_function_reads(
    function: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["MODEL_S3_URI"] == {"Fn::Sub": "s3://${ModelBucket}/${ModelPrefix}"}
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(
        variables
    )
    read = variables_read_by_settings(monkeypatch, tmp_path)
    for name in variables:
        if not name.startswith("POWERTOOLS_"):
            assert name in read, f"{name} is set but handler/settings.py never reads it"
    assert "QA_BACKEND" not in variables, "the image sets QA_BACKEND: a template value could contradict it"


def test_model_prefix_makes_a_valid_model_uri(template: dict[str, Any]) -> None:
    prefix = template["Parameters"]["ModelPrefix"]
    pattern = prefix["AllowedPattern"]
    assert re.fullmatch(pattern, prefix["Default"])
    for bad in ("/models/x/", "models/x", "s3://b/models/"):
        assert not re.fullmatch(pattern, bad), bad


def _routes(api: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    paths = api["DefinitionBody"]["paths"]
    return {(path, method): spec for path, methods in paths.items() for method, spec in methods.items()}


def test_api_serves_predict_and_health_through_the_function_alias(api: dict[str, Any]) -> None:
    routes = _routes(api)
    assert set(routes) == {("/predict", "post"), ("/health", "get")}
    for spec in routes.values():
        integration = spec["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert integration["httpMethod"] == "POST"  # Lambda proxy integrations are always POSTed
        assert "/functions/${QaFunctionAliaslive}/invocations" in integration["uri"]["Fn::Sub"]


def test_api_auth_is_iam_or_api_key_by_parameter(template: dict[str, Any], api: dict[str, Any]) -> None:
    assert sorted(template["Parameters"]["ApiAuth"]["AllowedValues"]) == ["API_KEY", "IAM"]
    schemes = api["DefinitionBody"]["securityDefinitions"]
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert schemes["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    for spec in _routes(api).values():
        condition, if_true, if_false = spec["security"]["Fn::If"]
        assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "IAM"]}
        assert (if_true, if_false) == ([{"sigv4": []}], [{"api_key": []}])
    assert api["AlwaysDeploy"] is True, "SAM cannot see an auth change through Fn::If: redeploy every update"


def test_api_key_mode_creates_a_throttled_usage_plan(template: dict[str, Any]) -> None:
    by_type = {v["Type"]: v for v in template["Resources"].values()}
    plan = by_type["AWS::ApiGateway::UsagePlan"]
    assert plan["Properties"]["Throttle"] == {
        "RateLimit": {"Ref": "ThrottleRateLimit"},
        "BurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    for kind in ("UsagePlan", "ApiKey", "UsagePlanKey"):
        condition = by_type[f"AWS::ApiGateway::{kind}"]["Condition"]
        assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "API_KEY"]}


def test_stage_is_throttled(api: dict[str, Any]) -> None:
    (setting,) = api["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}


def test_api_may_invoke_only_its_two_routes(template: dict[str, Any]) -> None:
    permissions = [v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::Permission"]
    arns = sorted(p["Properties"]["SourceArn"]["Fn::Sub"].rsplit(":", 1)[1] for p in permissions)
    assert arns == ["${QaApi}/*/GET/health", "${QaApi}/*/POST/predict"]
    assert all(p["Properties"]["Principal"] == "apigateway.amazonaws.com" for p in permissions)


def test_outputs_name_the_api_url_and_the_function(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"ApiUrl", "FunctionName", "FunctionArn"} <= set(outputs)
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].startswith("https://${QaApi}.execute-api.")
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["QaFunction", "Arn"]}


def test_samconfig_builds_and_deploys_with_the_same_image_settings(template: dict[str, Any]) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = dict(
        pair.split("=", 1)
        for pair in config["default"]["global"]["parameters"]["parameter_overrides"].split()
    )
    assert set(overrides) == {"ImageVariant", "Architecture"}
    for name, value in overrides.items():
        assert value in template["Parameters"][name]["AllowedValues"]
    assert config["default"]["deploy"]["parameters"]["resolve_image_repos"] is True
