"""Deploy rehearsal: the pinned SAM CLI runs `sam deploy` with the committed samconfig.toml against a local
AWS (moto server on loopback, fake credentials), from a `sam build` output whose image is a local tag.

It must get past bucket resolution (resolve_s3) and the ECR companion stack (created, then updated) up to the
image push, the first step that needs Docker; there it stops by name. The commands the docs and deploy.yml
give are run the same way. Every API call SAM CLI made is recorded and must be in qa_tools/deploy_calls.py
under the deploy role. Without resolve_s3 the same run stops at "S3 Bucket not specified" (issue 19, 1.).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from qa_tools.deploy_calls import CALLS
from tests.fixtures import ROOT
from tests.fixtures.iam import allowed, statements
from tests.fixtures.sam import SAM_INSTALL, SAM_VENV

SCRIPT = ROOT / "tests" / "fixtures" / "sam_rehearsal.py"
REGION = "eu-west-1"
LOCAL_IMAGE = "qafunction:onnx"  # what `sam build` writes into the built template's ImageUri
# SAM CLI asks for Docker to push the image: with no Docker reachable it stops here, by name.
PUSH_STEP = "Unable to upload artifact qafunction:onnx referenced by ImageUri parameter of QaFunction"
SIGNING_TO_IAM = {"cloudformation": "cloudformation", "s3": "s3", "ecr": "ecr", "sts": "sts"}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """A moto server; its URL names `localhost` so moto can read the TemplateURLs SAM hands CloudFormation."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://localhost:{port}"
    server.stop()


def _python() -> str:
    python = SAM_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"SAM CLI not found in {SAM_VENV}: run `{SAM_INSTALL}`")
    return str(python)


def _env(endpoint: str, home: Path, calls: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0",
        "DOCKER_HOST": f"unix://{home}/no-docker.sock",  # never a real Docker daemon
        "SAM_CALL_LOG": str(calls),
        "CLOUDFORMATION_ROLE_ARN": "arn:aws:iam::123456789012:role/extractive-qa-cloudformation",
    }


class Project:
    """A copy of the project as `sam build` leaves it: template.yaml, samconfig.toml, .aws-sam/build."""

    def __init__(self, root: Path, endpoint: str, samconfig: str | None = None) -> None:
        self.root, self.endpoint = root, endpoint
        shutil.copy(ROOT / "template.yaml", root / "template.yaml")
        (root / "samconfig.toml").write_text(samconfig or (ROOT / "samconfig.toml").read_text())
        built = root / ".aws-sam" / "build"
        built.mkdir(parents=True)
        template = (ROOT / "template.yaml").read_text()
        template, n = re.subn(
            r"^(      PackageType: Image\n)", rf"\g<1>      ImageUri: {LOCAL_IMAGE}\n", template, flags=re.M
        )
        assert n == 1
        (built / "template.yaml").write_text(template)
        self.calls = root / "calls.jsonl"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))  # noqa: S310

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls.unlink(missing_ok=True)
        return subprocess.run(
            [_python(), str(SCRIPT), *args],
            cwd=self.root,
            env=_env(self.endpoint, self.root, self.calls),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def recorded(self) -> list[dict]:
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text().splitlines()]

    def seed_managed_bucket_stack(self) -> None:
        result = self.run("seed")
        assert result.returncode == 0, result.stderr


def _actions(recorded: list[dict]) -> list[str]:
    return [f"{SIGNING_TO_IAM[c['service']]}:{c['operation']}" for c in recorded]


def _reaches_the_push(result: subprocess.CompletedProcess[str], project: Project) -> list[str]:
    output = result.stdout + result.stderr
    assert result.returncode != 0 and PUSH_STEP in output, output[-3000:]
    assert "S3 Bucket not specified" not in output
    actions = _actions(project.recorded())
    companion = [
        c for c in project.recorded() if c["params"].get("StackName", "").endswith("-CompanionStack")
    ]
    assert companion, "the companion stack was never touched"
    assert actions[-1] == "ecr:GetAuthorizationToken", actions  # docker login: the push comes next
    return actions


def _assert_the_deploy_role_allows(recorded: list[dict]) -> None:
    """Each call SAM CLI made, on the resource it named, against iam/sam-deploy-role.json (moto's account)."""
    text = (ROOT / "iam" / "sam-deploy-role.json").read_text()
    policy = statements(json.loads(text.replace("ACCOUNT_ID", "123456789012").replace("REGION", REGION)))
    for call in recorded:
        service, operation, params = call["service"], call["operation"], call["params"]
        if service == "sts":
            continue  # GetCallerIdentity needs no permission
        if service == "cloudformation":
            arn = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{params['StackName']}/some-id"
        elif service == "s3":
            arn = f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"
            operation = "GetObject" if operation == "HeadObject" else operation
        else:
            arn = "*"
        assert allowed(policy, f"{service}:{operation}", arn), f"the deploy role may not {operation} on {arn}"


def _assert_in_the_table(actions: list[str]) -> None:
    tabled = {c.action.replace("HeadObject", "GetObject") for c in CALLS if c.principal == "sam-deploy"}
    as_iam = {a.replace("s3:HeadObject", "s3:GetObject") for a in actions}  # HeadObject is s3:GetObject
    assert as_iam <= tabled, f"SAM CLI made calls the table lacks: {sorted(as_iam - tabled)}"


def test_committed_samconfig_deploys_up_to_the_image_push(tmp_path: Path, aws: str) -> None:
    project = Project(tmp_path, aws)
    project.seed_managed_bucket_stack()
    first = _reaches_the_push(project.run("sam", "deploy", "--no-progressbar"), project)
    assert "cloudformation:CreateStack" in first
    first_calls = project.recorded()
    uploads = [c for c in first_calls if c["operation"] == "PutObject"]
    assert uploads and all(c["params"]["Key"].startswith("extractive-qa/") for c in uploads)  # s3_prefix
    # The repository the companion stack made is the one the deploy role may push to.
    fake = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    ecr = boto3.client("ecr", endpoint_url=aws, region_name=REGION, **fake)
    (repo,) = ecr.describe_repositories()["repositories"]
    assert re.fullmatch(r"extractiveqa[0-9a-f]{8}/qafunction[0-9a-f]{8}repo", repo["repositoryName"])
    # Every later deploy updates the companion stack (and lists its resources) before pushing.
    second = _reaches_the_push(project.run("sam", "deploy", "--no-progressbar"), project)
    assert {"cloudformation:UpdateStack", "cloudformation:ListStackResources"} <= set(second)
    _assert_in_the_table(first + second)
    _assert_the_deploy_role_allows(first_calls + project.recorded())


def test_without_resolve_s3_the_deploy_stops_before_anything(tmp_path: Path, aws: str) -> None:
    """The mistake of issue 19 (1.): resolve_image_repos without a bucket; the rehearsal must catch it."""
    samconfig = (ROOT / "samconfig.toml").read_text()
    broken = re.sub(r"^(resolve_s3|s3_prefix) = .*\n", "", samconfig, flags=re.M)
    assert broken != samconfig
    project = Project(tmp_path, aws, samconfig=broken)
    project.seed_managed_bucket_stack()
    result = project.run("sam", "deploy", "--no-progressbar")
    assert result.returncode != 0
    assert "S3 Bucket not specified" in result.stdout + result.stderr
    assert "cloudformation:CreateStack" not in _actions(project.recorded())


def _documented_deploy_commands() -> list[tuple[str, str]]:
    """`sam deploy` lines as the docs (fenced shell blocks) and deploy.yml's run steps write them."""
    commands = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        fenced = False
        for line in doc.read_text().replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif fenced and re.match(r"\s*(\.sam-venv/bin/)?sam deploy\b", line):
                commands.append((doc.name, line.split(" #", 1)[0].strip()))
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    for step in workflow["jobs"]["deploy"]["steps"]:
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            if ".sam-venv/bin/sam deploy" in line:
                commands.append(("deploy.yml", line.strip()))
    return commands


def test_the_documented_commands_are_found() -> None:
    sources = {source for source, _ in _documented_deploy_commands()}
    assert "deploy.yml" in sources and len(sources) >= 2, sources


@pytest.mark.parametrize(("source", "command"), _documented_deploy_commands())
def test_each_documented_deploy_command_reaches_the_image_push(
    tmp_path: Path, aws: str, source: str, command: str
) -> None:
    project = Project(tmp_path, aws)
    project.seed_managed_bucket_stack()
    env = _env(aws, tmp_path, project.calls)
    words = [re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], w) for w in shlex.split(command)]
    assert "--guided" not in words, f"{source}: --guided copies parameters where sam build never reads them"
    assert "--parameter-overrides" not in words, f"{source}: it replaces samconfig.toml's whole list"
    sam_at = next(i for i, w in enumerate(words) if w.endswith("sam"))
    _reaches_the_push(project.run("sam", *words[sam_at + 1 :]), project)
