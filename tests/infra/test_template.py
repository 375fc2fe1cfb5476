"""template.yaml: what the stack grants, sizes and exposes, as written and as SAM's translator deploys it.

cfn-lint and `sam validate` (tests/infra/test_infra_lint.py) check that it is valid; these tests check the
project's decisions: least-privilege S3 access, sizing defaults, one API stage, IAM auth with an optional
API key, the handler's routes, the pre-traffic gate on the live alias, log retention, and that the pieces
agree with each other (Dockerfile targets, handler settings).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

from handler.api.http import ROUTES
from handler.settings import Settings
from tests.fixtures import ROOT
from tests.fixtures.dockerfile import RUNTIME_TARGETS, parse_dockerfile
from tests.fixtures.sam import IMAGE_URI, Deployed, translate

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
    """The QA function (the other function is the pre-traffic hook)."""
    (name,) = [
        k
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::Serverless::Function" and v["Properties"].get("PackageType") == "Image"
    ]
    return template["Resources"][name]


@pytest.fixture(scope="module")
def stack() -> Deployed:
    """The stack a `sam deploy` with the default parameters creates."""
    return translate()


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
    paths = api["DefinitionBody"]["paths"] if "DefinitionBody" in api else api["Body"]["paths"]
    return {(path, method): spec for path, methods in paths.items() for method, spec in methods.items()}


def test_api_has_a_single_stage(stack: Deployed) -> None:
    """SAM adds a stage named "Stage" beside the declared one unless OpenApiVersion is set; it would bypass
    the stage's throttling and settings."""
    (stage,) = stack.of_type("AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == {"Ref": "StageName"}
    for deployment in stack.of_type("AWS::ApiGateway::Deployment").values():
        assert "StageName" not in deployment["Properties"]


def test_api_routes_are_the_handlers_routes_through_the_live_alias(stack: Deployed) -> None:
    (api,) = stack.of_type("AWS::ApiGateway::RestApi").values()
    routes = _routes(api["Properties"])
    assert set(routes) == {(path, m.lower()) for path, methods in ROUTES.items() for m in methods}
    alias = next(iter(stack.of_type("AWS::Lambda::Alias")))
    permitted = set()
    for permission in stack.of_type("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert props["FunctionName"] == {"Ref": alias}, "the API may invoke the live alias only"
        method, path = re.fullmatch(r".*:\$\{QaApi\}/\*/(\w+)(/.*)", props["SourceArn"]["Fn::Sub"]).groups()
        permitted.add((path, method.lower()))
    assert permitted == set(routes), "each route, and only the routes, may invoke the function"
    for spec in routes.values():
        integration = spec["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert integration["httpMethod"] == "POST"  # Lambda proxy integrations are always POSTed
        assert f"/functions/${{{alias}}}/invocations" in integration["uri"]["Fn::Sub"]


def test_every_route_requires_sigv4_and_no_api_key_by_default(stack: Deployed) -> None:
    (api,) = stack.of_type("AWS::ApiGateway::RestApi").values()
    schemes = api["Properties"]["Body"]["securityDefinitions"]
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    for spec in _routes(api["Properties"]).values():
        assert spec["security"] == [{"sigv4": []}]
    assert not stack.of_type("AWS::ApiGateway::ApiKey")
    assert not stack.of_type("AWS::ApiGateway::UsagePlan")


def test_an_api_key_meters_callers_on_top_of_sigv4() -> None:
    stack = translate(ApiKeyRequired="true")
    (api,) = stack.of_type("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["Body"]["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    for spec in _routes(api["Properties"]).values():
        assert spec["security"] == [{"sigv4": [], "api_key": []}], "both required: SigV4 AND the key"
    (plan,) = stack.of_type("AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {
        "RateLimit": {"Ref": "ThrottleRateLimit"},
        "BurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    (plan_key,) = stack.of_type("AWS::ApiGateway::UsagePlanKey").values()
    (key,) = stack.of_type("AWS::ApiGateway::ApiKey")
    assert plan_key["Properties"]["KeyId"] == {"Ref": key}


def test_api_redeploys_on_every_update(api: dict[str, Any]) -> None:
    assert api["AlwaysDeploy"] is True, "SAM cannot see an ApiKeyRequired change through Fn::If"


def test_stage_is_throttled(api: dict[str, Any]) -> None:
    (setting,) = api["MethodSettings"]
    assert (setting["ResourcePath"], setting["HttpMethod"]) == ("/*", "*")
    assert setting["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}


def test_the_live_alias_moves_only_after_the_pre_traffic_hook(stack: Deployed) -> None:
    """CloudFormation is the alias's one owner; CodeDeploy runs the hook against the new version first."""
    (alias,) = stack.of_type("AWS::Lambda::Alias").values()
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    hook_name = update["BeforeAllowTrafficHook"]["Ref"]
    hook = stack.resources[hook_name]["Properties"]
    # SAM's CodeDeploy service role may invoke only functions whose names start with CodeDeployHook_.
    assert hook["FunctionName"]["Fn::Sub"].startswith("CodeDeployHook_")
    target = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert hook["Environment"]["Variables"]["NEW_VERSION"] == {"Ref": target}, "the hook tests what goes live"
    assert update["DeploymentGroupName"]["Ref"] in stack.of_type("AWS::CodeDeploy::DeploymentGroup")
    assert alias["Properties"]["Name"] == "live"


def _version(stack: Deployed) -> str:
    ((name, _),) = [
        (k, v) for k, v in stack.of_type("AWS::Lambda::Version").items() if k.startswith("QaFunction")
    ]
    return name


def test_a_new_image_publishes_a_new_version_and_a_parameter_alone_does_not() -> None:
    """SAM hashes parameter Refs unresolved: a parameter alone keeps the version's logical id (its Description
    then replaces the version: tests/infra/test_versions.py)."""
    first = _version(translate())
    assert _version(translate(image_uri=IMAGE_URI.replace("0123456789ab", "ba9876543210"))) != first
    assert _version(translate(MemorySize="4096", LogLevel="DEBUG")) == first


def test_logs_are_kept_for_the_retention_period(stack: Deployed, template: dict[str, Any]) -> None:
    functions = stack.of_type("AWS::Lambda::Function")
    assert len(functions) == 2
    for function in functions.values():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert stack.resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert int(template["Parameters"]["LogRetentionDays"]["Default"]) > 0


def test_the_default_image_fits_the_10_s_init(template: dict[str, Any]) -> None:
    """torch takes ~13 s to the first answer on the benchmark (docs/performance.md), ONNX int8 ~3.4 s; the CPU
    chooses the int8 recipe (``auto``)."""
    assert template["Parameters"]["ImageVariant"]["Default"] == "onnx"
    assert template["Parameters"]["OnnxPrecision"]["Default"] == "auto"


def test_outputs_name_the_api_url_and_the_function(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"ApiUrl", "FunctionName", "FunctionArn"} <= set(outputs)
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].startswith("https://${QaApi}.execute-api.")
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["QaFunction", "Arn"]}
