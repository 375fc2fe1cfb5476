"""The function as template.yaml and the Dockerfile define it, plus your overrides: what a local sandbox runs.

Read from the files, not restated, so a local run cannot drift from the deployed function: memory, timeout and
environment from the template's function; the image's ENV, CMD and copied code from the Dockerfile target the
template builds; the REST API's stage and routes from the template's API.

The function's environment, lowest precedence first:

1. from your shell: AWS_* (credentials, profile, region, endpoints such as AWS_ENDPOINT_URL_S3), HOME and PATH,
   so boto3 reaches S3 as it does for you; nothing else (a Lambda function starts from a clean slate);
2. local default POWERTOOLS_TRACE_DISABLED=1: there is no X-Ray daemon here;
3. the image's ENV for that Dockerfile target (HF_HOME, MODEL_DIR, QA_BACKEND, ...);
4. the template's Environment.Variables, parameters resolved from their defaults, samconfig.toml's
   parameter_overrides and ``--parameter NAME=VALUE``; a variable needing a parameter without a value is left out;
5. MODEL_LOCAL_PATH / MODEL_S3_URI from your shell, then ``--env-file``, then ``--env NAME=VALUE``.

Paths under /tmp from the image or the template mean Lambda's /tmp: they point into the sandbox's own (see
``sandbox``). Paths you give are used as they are; relative ones are from your working directory.

Unlike ``sam local``, overrides may add variables the template does not declare (MODEL_LOCAL_PATH, usually).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_tools.dockerfile_reader import ROOT, parse_dockerfile
from qa_tools.local.sandbox import FunctionConfig, is_lambda_tmp

MODEL_SOURCES = ("MODEL_LOCAL_PATH", "MODEL_S3_URI")  # handler.settings: one of them is required
PATH_VARIABLES = ("MODEL_LOCAL_PATH", "MODEL_DIR")  # relative paths you give are from your working directory
LOCAL_DEFAULTS = {"POWERTOOLS_TRACE_DISABLED": "1"}
SHELL_VARIABLES = ("HOME", "PATH")
ACCOUNT_ID = "123456789012"  # what the emulator and sam local put in ARNs
LAMBDA_DEFAULT_TIMEOUT_S = 3
LAMBDA_DEFAULT_MEMORY_MB = 128
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})


class SetupError(ValueError):
    """The local run cannot start as asked; the message says what to pass instead."""


class Unresolved(Exception):
    """A template value needs something only a deploy knows (a parameter without a value, an attribute)."""


@dataclass(frozen=True)
class ApiSpec:
    """The REST API in front of the function: its stage and which methods each path accepts."""

    stage: str
    routes: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class LocalSetup:
    function: FunctionConfig
    api: ApiSpec | None
    target: str  # the Dockerfile target
    unresolved: Mapping[str, str]  # template variable -> why it was left out


def load(
    *,
    target: str | None = None,
    parameters: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    caller_env: Mapping[str, str] | None = None,
    root: Path = ROOT,
) -> LocalSetup:
    """The function of ``root``'s template.yaml and Dockerfile, with ``env_file`` then ``overrides`` (``--env``)."""
    shell = os.environ if caller_env is None else caller_env
    template = _template(root / "template.yaml")
    logical_id, resource = _function(template)
    props = {**template.get("Globals", {}).get("Function", {}), **resource.get("Properties", {})}
    region = shell.get("AWS_REGION") or shell.get("AWS_DEFAULT_REGION") or "us-east-1"
    params = _parameters(template, root, parameters or {}, region)

    variables = {
        **template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
        **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
    }
    declared: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for name, value in variables.items():
        try:
            declared[name] = resolve(value, params)
        except Unresolved as exc:
            unresolved[name] = str(exc)

    image = parse_dockerfile(root / "Dockerfile")
    build_target = target or _resolve_or(resource.get("Metadata", {}).get("DockerBuildTarget"), params, "")
    build_target = build_target or list(image.stages)[-1]
    if build_target not in image.stages:
        raise SetupError(
            f"the Dockerfile has no target {build_target!r}; choose one of {', '.join(image.stages)}"
        )

    passed = {k: v for k, v in shell.items() if k.startswith("AWS_") and not k.startswith("AWS_LAMBDA_")}
    passed.update({k: shell[k] for k in SHELL_VARIABLES if k in shell})
    yours = {k: shell[k] for k in MODEL_SOURCES if shell.get(k)}
    yours.update(read_env_file(env_file, logical_id) if env_file else {})
    yours.update(overrides or {})
    for name in PATH_VARIABLES:
        if yours.get(name):
            yours[name] = str(Path(yours[name]).expanduser().resolve())
    function_env = {**image.env(build_target), **declared}  # what the deployed function would get
    environment = {**passed, **LOCAL_DEFAULTS, **function_env, **yours}
    lambda_tmp = {k for k, v in function_env.items() if k not in yours and is_lambda_tmp(v)}
    for name in yours:
        unresolved.pop(name, None)

    config = FunctionConfig(
        name=logical_id,
        handler=image.cmd(build_target)[0],
        memory_mb=int(_resolve_or(props.get("MemorySize"), params, LAMBDA_DEFAULT_MEMORY_MB)),
        timeout_s=float(_resolve_or(props.get("Timeout"), params, LAMBDA_DEFAULT_TIMEOUT_S)),
        region=region,
        account_id=ACCOUNT_ID,
        environment=environment,
        task_root_sources=tuple(root / src.rstrip("/") for src in image.task_root_sources(build_target)),
        tmp_variables=frozenset(lambda_tmp),
    )
    return LocalSetup(config, _api(template, params), build_target, unresolved)


def require_model_source(setup: LocalSetup) -> None:
    """Refuses to start a function that could only fail init: it needs MODEL_LOCAL_PATH or MODEL_S3_URI."""
    env = setup.function.environment
    if any(env.get(name) for name in MODEL_SOURCES):
        return
    template = "".join(f"; the template's {k} {v}" for k, v in setup.unresolved.items() if k in MODEL_SOURCES)
    raise SetupError(
        "no model to serve: pass --env MODEL_LOCAL_PATH=DIR (a model directory, such as "
        "models/minilm-l6-squad, the embedded model, or one written by `python -m qa_tools.publish MODEL DIR`) or "
        "--env MODEL_S3_URI=s3://BUCKET/PREFIX/ (a local S3 also needs AWS_ENDPOINT_URL_S3)" + template
    )


# --- overrides -------------------------------------------------------------------------------------------
def assignments(items: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` strings (``--env``, ``--parameter``) as a dict; later ones win."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SetupError(f"{option} takes NAME=VALUE, got {item!r}")
        found[name] = value
    return found


def read_env_file(path: Path, logical_id: str) -> dict[str, str]:
    """``{"NAME": "VALUE"}``, or SAM's ``--env-vars`` form: ``{"Parameters": {...}, "<LogicalId>": {...}}``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read the env file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SetupError(f"{path}: expected a JSON object of NAME: VALUE")
    if any(isinstance(v, dict) for v in data.values()):  # SAM's form: the function's own section wins
        data = {**data.get("Parameters", {}), **data.get(logical_id, {})}
    bad = [k for k, v in data.items() if not isinstance(v, str | int | float | bool)]
    if bad:
        raise SetupError(f"{path}: values must be strings or numbers, not for {', '.join(bad)}")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


# --- template ----------------------------------------------------------------------------------------------
def _template(path: Path) -> dict[str, Any]:
    """template.yaml read by cfn-lint's loader, which knows CloudFormation's short tags (!Ref, !Sub)."""
    from cfnlint.decode import decode_str

    template, problems = decode_str(path.read_text())
    if template is None or problems:
        raise SetupError(f"{path} cannot be read: {problems}")
    return dict(template)


def _function(template: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The container-image function (the Dockerfile's): other functions, such as deploy hooks, are not it."""
    found = [
        (k, v)
        for k, v in template.get("Resources", {}).items()
        if v.get("Type") == "AWS::Serverless::Function"
        and v.get("Properties", {}).get("PackageType") == "Image"
    ]
    if len(found) != 1:
        raise SetupError(f"template.yaml must declare one container-image function, found {len(found)}")
    return found[0]


def _parameters(
    template: Mapping[str, Any], root: Path, given: Mapping[str, str], region: str
) -> dict[str, str]:
    declared = template.get("Parameters", {})
    values = {k: str(p["Default"]) for k, p in declared.items() if "Default" in p}
    # samconfig.toml's placeholders (ModelBucket=SET-ME) are not values: CloudFormation would refuse them too.
    values.update(
        (k, v) for k, v in _samconfig_parameters(root / "samconfig.toml").items() if _allowed(declared, k, v)
    )
    unknown = set(given) - set(declared)
    if unknown:
        raise SetupError(f"template.yaml has no parameter {', '.join(sorted(unknown))}")
    refused = sorted(k for k, v in given.items() if not _allowed(declared, k, v))
    if refused:
        raise SetupError(f"not allowed by template.yaml: {', '.join(f'{k}={given[k]}' for k in refused)}")
    values.update(given)
    pseudo = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": _samconfig(root / "samconfig.toml").get("stack_name", "local"),
    }
    return {**pseudo, **values}


def _allowed(declared: Mapping[str, Any], name: str, value: str) -> bool:
    """What CloudFormation checks of a parameter value: AllowedValues and AllowedPattern."""
    spec = declared.get(name, {})
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return False
    return "AllowedPattern" not in spec or re.fullmatch(spec["AllowedPattern"], value) is not None


def _samconfig(path: Path) -> dict[str, Any]:
    """The sections ``sam local`` reads: [default.global.parameters], then [default.local_invoke.parameters]."""
    if not path.is_file():
        return {}
    default = tomllib.loads(path.read_text()).get("default", {})
    return {
        **default.get("global", {}).get("parameters", {}),
        **default.get("local_invoke", {}).get("parameters", {}),
    }


def _samconfig_parameters(path: Path) -> dict[str, str]:
    raw = _samconfig(path).get("parameter_overrides", "")
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return dict(item.partition("=")[::2] for item in items if "=" in item)


def resolve(value: Any, params: Mapping[str, str]) -> str:
    """A template value as a string: literals, ``Ref`` and ``Fn::Sub`` of parameters; anything else is Unresolved."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Mapping) and len(value) == 1:
        (function, arg), *_ = value.items()
        if function == "Ref" and isinstance(arg, str):
            return _parameter(arg, params)
        if function == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            scope = {**params, **{k: resolve(v, params) for k, v in local.items()}}
            return re.sub(r"\$\{([^}]+)\}", lambda m: _substitution(m[1], scope), text)
    raise Unresolved(f"uses {json.dumps(value, default=str)}, which only a deploy resolves")


def _substitution(name: str, params: Mapping[str, str]) -> str:
    return "${" + name[1:] + "}" if name.startswith("!") else _parameter(name, params)


def _parameter(name: str, params: Mapping[str, str]) -> str:
    if name not in params:
        raise Unresolved(f"needs {name}, which has no default: pass --parameter {name}=VALUE")
    return params[name]


def _resolve_or(value: Any, params: Mapping[str, str], default: Any) -> Any:
    return default if value is None else resolve(value, params)


def _api(template: Mapping[str, Any], params: Mapping[str, str]) -> ApiSpec | None:
    apis = [v for v in template.get("Resources", {}).values() if v.get("Type") == "AWS::Serverless::Api"]
    if len(apis) != 1:
        return None
    props = apis[0].get("Properties", {})
    paths = props.get("DefinitionBody", {}).get("paths", {})
    routes = {
        path: frozenset(m.upper() for m in operations if m in HTTP_METHODS)
        for path, operations in paths.items()
    }
    return ApiSpec(_resolve_or(props.get("StageName"), params, "Prod"), routes)
