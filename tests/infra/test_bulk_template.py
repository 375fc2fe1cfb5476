"""The optional bulk-jobs block of template.yaml, read as data: off by default, the Distributed Map the issue
asks for, a definition that agrees with the function and with ``qa_tools.bulk``, batch sizes that fit the
function's timeout, and a role that can do exactly what the job needs.

cfn-lint and ``sam validate`` (test_infra_lint.py) check the template with the block on, but cfn-lint does not
look inside a SAM ``Definition``: here the resolved definition is validated against cfn-lint's own Step
Functions schema. moto runs it (test_bulk_submit.py) as far as it can.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

import cfnlint
import jsonschema
import pytest

from handler.api.batch import BatchEvent
from handler.settings import DEFAULT_MAX_BULK_ITEMS
from qa_tools.bulk.__main__ import FUNCTION_TIMEOUT_S
from qa_tools.bulk.sizing import MAX_PAYLOAD_BYTES, REFERENCE, batch_limits
from qa_tools.bulk.submit import execution_input
from tests.fixtures.bulk import ALIAS_ARN, bulk_definition, template

CONDITION = "BulkJobsEnabled"
NUMERIC = {  # Settings field -> template parameter
    "maxItemsPerBatch": "BulkMaxItemsPerBatch",
    "maxInputBytesPerBatch": "BulkMaxInputBytesPerBatch",
    "maxConcurrency": "BulkMaxConcurrency",
    "toleratedFailurePercentage": "BulkToleratedFailurePercentage",
}


@pytest.fixture(scope="module")
def tmpl() -> dict[str, Any]:
    return template()


@pytest.fixture(scope="module")
def raw(tmpl: dict[str, Any]) -> dict[str, Any]:
    """The definition as written (intrinsics unresolved)."""
    return tmpl["Resources"]["BulkStateMachine"]["Properties"]["Definition"]


@pytest.fixture(scope="module")
def definition(tmpl: dict[str, Any]) -> dict[str, Any]:
    return bulk_definition(tmpl)


def the_map(definition: dict[str, Any]) -> dict[str, Any]:
    (state,) = [s for s in definition["States"].values() if s["Type"] == "Map"]
    return state


def resolve_path(path: str, state_input: dict[str, Any], execution: dict[str, Any]) -> Any:
    """A plain ``$.a.b`` (state input) or ``$$.Execution.Input.a.b`` reference path."""
    if path.startswith("$$.Execution.Input"):
        node, rest = execution, path.removeprefix("$$.Execution.Input")
    else:
        node, rest = state_input, path.removeprefix("$")
    for part in filter(None, rest.split(".")):
        node = node[part]
    return node


def test_off_by_default_and_everything_bulk_is_conditional(tmpl: dict[str, Any]) -> None:
    assert tmpl["Parameters"]["BulkJobs"]["Default"] == "Disabled"
    assert tmpl["Conditions"][CONDITION] == {"Fn::Equals": [{"Ref": "BulkJobs"}, "Enabled"]}
    bulk = {k: v for k, v in tmpl["Resources"].items() if k.startswith("Bulk")}
    assert {v["Type"] for v in bulk.values()} == {
        "AWS::Serverless::StateMachine", "AWS::IAM::Role", "AWS::IAM::RolePolicy", "AWS::Logs::LogGroup",
    }  # fmt: skip
    assert all(v.get("Condition") == CONDITION for v in bulk.values())
    outputs = {k: v for k, v in tmpl["Outputs"].items() if k.startswith("Bulk")}
    assert set(outputs) == {"BulkStateMachineArn", "BulkInputUri", "BulkResultsUri"}
    assert all(v.get("Condition") == CONDITION for v in outputs.values())
    others = [k for k, v in tmpl["Resources"].items() if not k.startswith("Bulk")]
    assert not any("Bulk" in json.dumps(tmpl["Resources"][k]) for k in others), "the block stays separate"


def test_definition_matches_cfn_lints_step_functions_schema(definition: dict[str, Any]) -> None:
    path = os.path.join(
        os.path.dirname(cfnlint.__file__), "data/schemas/other/step_functions/statemachine.json"
    )
    with open(path, encoding="utf-8") as f:
        validator = jsonschema.Draft202012Validator(
            json.load(f)
        )  # keywords beside $ref count, as in cfn-lint
    assert [e.message for e in validator.iter_errors(definition)] == []
    broken = copy.deepcopy(definition)
    the_map(broken)["ItemProcessor"]["States"]["CheckBatch"]["Type"] = "Chooser"
    the_map(broken)["MaxConcurrencyPth"] = "$.x"
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "Chooser" in messages and "MaxConcurrencyPth" in messages


def test_a_distributed_map_over_jsonl_in_s3_batched_into_the_live_alias(
    definition: dict[str, Any], raw: dict[str, Any]
) -> None:
    state = the_map(definition)
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    reader = state["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSONL"}
    assert {"MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath", "BatchInput"} == set(state["ItemBatcher"])
    assert {"MaxConcurrencyPath", "ToleratedFailurePercentagePath"} <= set(state)
    writer = state["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    assert writer["WriterConfig"] == {
        "OutputType": "JSONL",
        "Transformation": "FLATTEN",
    }  # a line per question
    states = state["ItemProcessor"]["States"]
    (task,) = [s for s in states.values() if s["Type"] == "Task"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {"FunctionName": ALIAS_ARN, "Payload.$": "$"}  # the batch as is
    (raw_task,) = [s for s in the_map(raw)["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
    assert raw_task["Parameters"]["FunctionName"] == {"Ref": "QaFunction.Alias"}
    assert task["OutputPath"] == "$.Payload"
    assert "arn:aws:" not in json.dumps(raw), "ARNs name ${AWS::Partition} (GovCloud, China)"


def test_express_child_runs_log_their_errors_without_execution_data(tmpl: dict[str, Any]) -> None:
    """EXPRESS children keep no execution history: their failures are only visible in these logs."""
    logging = tmpl["Resources"]["BulkStateMachine"]["Properties"]["Logging"]
    assert logging["Level"] in ("ERROR", "ALL") and logging["IncludeExecutionData"] is False
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert tmpl["Resources"][group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_lambda_throttling_and_service_errors_are_retried_with_backoff(definition: dict[str, Any]) -> None:
    (task,) = [s for s in the_map(definition)["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
    (retry,) = task["Retry"]
    assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= set(retry["ErrorEquals"])
    assert "Lambda.Unknown" not in retry["ErrorEquals"], "a timed-out batch would only time out again"
    assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3 and retry["JitterStrategy"] == "FULL"


def test_a_refused_batch_fails_its_child_with_the_functions_error(definition: dict[str, Any]) -> None:
    states = the_map(definition)["ItemProcessor"]["States"]
    (task,) = [s for s in states.values() if s["Type"] == "Task"]
    choice = states[task["Next"]]
    assert choice["Type"] == "Choice"
    (rule,) = choice["Choices"]
    assert (rule["Variable"], rule["IsPresent"]) == ("$.error", True)  # the function's envelope error
    fail = states[rule["Next"]]
    assert fail == {"Type": "Fail", "ErrorPath": "$.error.type", "CausePath": "$.error.message"}
    assert states[choice["Default"]]["Type"] == "Succeed"


def test_the_definition_reads_what_submit_sends_and_sends_what_the_function_reads(
    definition: dict[str, Any],
) -> None:
    execution = execution_input(
        "s3://in-bucket/bulk/input/x.jsonl", "s3://out-bucket/bulk/results/", {"top_k": 2}
    )
    settings_state = definition["States"][definition["StartAt"]]
    state_input = {**execution, settings_state["ResultPath"].removeprefix("$."): dict.fromkeys(NUMERIC, 1)}
    state = the_map(definition)
    assert definition["States"][settings_state["Next"]] is state
    reader = {k.removesuffix(".$"): resolve_path(v, state_input, execution)
              for k, v in state["ItemReader"]["Parameters"].items()}  # fmt: skip
    assert reader == {"Bucket": "in-bucket", "Key": "bulk/input/x.jsonl"}
    writer = {k.removesuffix(".$"): resolve_path(v, state_input, execution)
              for k, v in state["ResultWriter"]["Parameters"].items()}  # fmt: skip
    assert writer == {"Bucket": "out-bucket", "Prefix": "bulk/results"}
    batcher = state["ItemBatcher"]
    for field in ("MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath"):
        assert resolve_path(batcher[field], state_input, execution) == 1
    batch_input = {k.removesuffix(".$"): resolve_path(v, state_input, execution)
                   for k, v in batcher["BatchInput"].items()}  # fmt: skip
    event = BatchEvent.model_validate(
        {"Items": [{"question": "q", "context": "c"}], "BatchInput": batch_input}
    )
    assert event.BatchInput.parameters.top_k == 2


def test_numeric_parameters_become_numbers_before_the_map(tmpl: dict[str, Any], raw: dict[str, Any]) -> None:
    """SAM passes intrinsics into a Definition as strings; the Map's fields need integers (SAM issue #1616)."""
    settings_state = raw["States"][raw["StartAt"]]
    assert settings_state["Type"] == "Pass"
    fields = settings_state["Parameters"]
    assert set(fields) == {f"{name}.$" for name in NUMERIC}
    for name, parameter in NUMERIC.items():
        assert fields[f"{name}.$"] == {"Fn::Sub": f"States.StringToJson('${{{parameter}}}')"}
        spec = tmpl["Parameters"][parameter]
        assert spec["Type"] == "Number" and {"MinValue", "MaxValue"} <= set(spec)
    target = settings_state["ResultPath"].removeprefix("$.")
    state = the_map(raw)
    paths = {state["MaxConcurrencyPath"], state["ToleratedFailurePercentagePath"],
             state["ItemBatcher"]["MaxItemsPerBatchPath"], state["ItemBatcher"]["MaxInputBytesPerBatchPath"]}  # fmt: skip
    assert paths == {f"$.{target}.{name}" for name in NUMERIC}


def test_batch_defaults_fit_the_functions_timeout(tmpl: dict[str, Any]) -> None:
    timeout = tmpl["Resources"]["QaFunction"]["Properties"]["Timeout"]
    assert timeout == FUNCTION_TIMEOUT_S, "qa_tools.bulk's default must follow the template"
    limits = batch_limits(timeout_s=timeout, **REFERENCE)
    params = tmpl["Parameters"]
    assert int(params["BulkMaxItemsPerBatch"]["Default"]) == limits.max_items_per_batch
    assert int(params["BulkMaxInputBytesPerBatch"]["Default"]) == limits.max_input_bytes_per_batch
    assert (
        params["BulkMaxItemsPerBatch"]["MaxValue"] <= DEFAULT_MAX_BULK_ITEMS
    )  # never refused by the function
    assert params["BulkMaxInputBytesPerBatch"]["MaxValue"] <= MAX_PAYLOAD_BYTES
    assert 0 <= int(params["BulkToleratedFailurePercentage"]["Default"]) <= 100


def _statements(tmpl: dict[str, Any]) -> list[dict[str, Any]]:
    role = tmpl["Resources"]["BulkStateMachineRole"]["Properties"]
    policy = tmpl["Resources"]["BulkStateMachineExecutionPolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "BulkStateMachineRole"}
    docs = [p["PolicyDocument"] for p in role["Policies"]] + [policy["PolicyDocument"]]
    return [s for doc in docs for s in doc["Statement"]]


def _resources(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    out = []
    for r in resources:
        if "Fn::Sub" in r:
            sub = r["Fn::Sub"]
            out.append(sub if isinstance(sub, str) else sub[0])
        else:
            out.append(json.dumps(r, sort_keys=True))
    return out


def test_the_role_trusts_only_step_functions_of_this_account(tmpl: dict[str, Any]) -> None:
    role = tmpl["Resources"]["BulkStateMachineRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role
    machine = tmpl["Resources"]["BulkStateMachine"]["Properties"]
    assert machine["Role"] == {"Fn::GetAtt": ["BulkStateMachineRole", "Arn"]} and "Policies" not in machine


def test_the_role_can_do_exactly_what_the_job_needs(tmpl: dict[str, Any]) -> None:
    granted: dict[str, list[str]] = {}
    for statement in _statements(tmpl):
        assert (
            statement["Effect"] == "Allow" and "NotAction" not in statement and "NotResource" not in statement
        )
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            assert "*" not in action
            granted.setdefault(action, []).extend(_resources(statement))
    machine = r"arn:\$\{AWS::Partition\}:states:\$\{AWS::Region\}:\$\{AWS::AccountId\}:execution:\$\{BulkStateMachine\.Name\}"
    s3 = r"arn:\$\{AWS::Partition\}:s3:::\$\{Bucket\}/"
    expected = {
        "s3:GetObject": [s3 + r"\$\{BulkInputPrefix\}\*", s3 + r"\$\{BulkOutputPrefix\}\*"],
        "s3:PutObject": [s3 + r"\$\{BulkOutputPrefix\}\*"],
        "s3:ListMultipartUploadParts": [s3 + r"\$\{BulkOutputPrefix\}\*"],
        "s3:AbortMultipartUpload": [s3 + r"\$\{BulkOutputPrefix\}\*"],
        "lambda:InvokeFunction": [re.escape(json.dumps({"Ref": "QaFunction.Alias"}))],
        "states:StartExecution": [re.escape(json.dumps({"Ref": "BulkStateMachine"}))],
        "states:DescribeExecution": [machine + ":\\*", machine + "/\\*"],
        "states:StopExecution": [machine + "/\\*"],
    }
    # Log delivery to CloudWatch Logs (Logging of the EXPRESS children): these actions take no resource.
    log_delivery = {
        "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }  # fmt: skip
    expected |= {action: [re.escape(json.dumps("*"))] for action in log_delivery}
    assert set(granted) == set(expected)
    for action, patterns in expected.items():
        assert len(granted[action]) == len(patterns), action
        for resource, pattern in zip(sorted(granted[action]), sorted(patterns), strict=True):
            assert re.fullmatch(pattern, resource), (action, resource)
