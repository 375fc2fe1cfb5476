"""Ship a new image to a Lambda function this stack does NOT own: the `update-function-code` path.

For a function created in the console or by other tooling (update-function.yml runs it after CI passed):

    python -m qa_tools.update_function platform --function NAME
        prints the function's Docker platform (linux/amd64 or linux/arm64): the image is built for it
    python -m qa_tools.update_function update --function NAME --image-uri REPO@sha256:DIGEST [--alias live]
        refuses a function a CloudFormation stack owns (tag aws:cloudformation:stack-name: deploy that one
        with `sam deploy`, which owns its alias); runs update-function-code with the image by digest and
        Publish, waits until the update is done (the function_updated_v2 waiter, what
        `aws lambda wait function-updated-v2` uses) and the version is active, asks the new version the smoke
        questions (qa_tools/smoke.py) directly, and only then moves the alias to it. A failed question leaves
        the alias where it was.

Results go to stdout as JSON; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from qa_tools.smoke import QUESTIONS, answer_problem

OWNER_TAG = "aws:cloudformation:stack-name"
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
DIGEST_URI = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$"
)


class Refused(RuntimeError):
    """The function or the image is not one this path may update."""


class SmokeFailed(RuntimeError):
    """The new version did not answer the smoke questions; the alias was not moved."""


@dataclass(frozen=True)
class Outcome:
    function_arn: str
    version: str
    alias: str
    previous: str

    def summary(self) -> dict[str, str]:
        return {
            "function": self.function_arn,
            "version": self.version,
            "alias": self.alias,
            "previous": self.previous,
        }


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def platform(client: Any, function: str) -> str:
    """The Docker platform of the function's architecture."""
    architectures = client.get_function_configuration(FunctionName=function)["Architectures"]
    return PLATFORMS[architectures[0]]


def check_updatable(client: Any, function: str) -> dict[str, Any]:
    """The function's configuration, if this path may update it: an image function no stack owns."""
    config = client.get_function_configuration(FunctionName=function)
    if config.get("PackageType") != "Image":
        raise Refused(f"{function} is a {config.get('PackageType')} function, not a container image")
    tags = client.list_tags(Resource=config["FunctionArn"]).get("Tags", {})
    if OWNER_TAG in tags:
        raise Refused(
            f"{function} belongs to CloudFormation stack {tags[OWNER_TAG]!r}: deploy it with `sam deploy` "
            "(the stack owns its code and its alias)"
        )
    return config


def smoke_version(client: Any, qualified_arn: str, version: str) -> list[str]:
    """Problems the new version shows on the smoke questions, asked directly (it takes no traffic yet)."""
    problems = []
    for question in QUESTIONS:
        payload = json.dumps({"question": question.question, "context": question.context})
        response = client.invoke(FunctionName=qualified_arn, Payload=payload)
        raw = response["Payload"].read().decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        if response.get("FunctionError"):
            problems.append(f"{question.question!r}: function error {response['FunctionError']}")
        elif response.get("ExecutedVersion") != version:
            problems.append(f"{question.question!r}: version {response.get('ExecutedVersion')} answered")
        elif problem := answer_problem(question, body):
            problems.append(f"{question.question!r}: {problem}")
    return problems


def update(
    client: Any, function: str, image_uri: str, alias: str = "live", *, waiter_delay: int = 5
) -> Outcome:
    """update-function-code by digest with Publish, wait, smoke-test the version, then move ``alias``."""
    if not DIGEST_URI.match(image_uri):
        raise Refused(f"{image_uri}: give the ECR image by digest (REPOSITORY@sha256:...), never by tag")
    config = check_updatable(client, function)
    function_arn = config["FunctionArn"]
    current = client.get_alias(FunctionName=function_arn, Name=alias)
    _log(f"{function_arn}: {alias} serves version {current['FunctionVersion']}; updating to {image_uri}")
    published = client.update_function_code(FunctionName=function_arn, ImageUri=image_uri, Publish=True)
    version = published["Version"]
    waiting = {"Delay": waiter_delay, "MaxAttempts": 180}
    client.get_waiter("function_updated_v2").wait(FunctionName=function_arn, WaiterConfig=waiting)
    client.get_waiter("published_version_active").wait(
        FunctionName=function_arn, Qualifier=version, WaiterConfig=waiting
    )
    _log(f"version {version} published; asking it {len(QUESTIONS)} smoke questions")
    problems = smoke_version(client, f"{function_arn}:{version}", version)
    if problems:
        raise SmokeFailed(
            f"version {version} failed, {alias} stays on {current['FunctionVersion']}: {problems}"
        )
    client.update_alias(
        FunctionName=function_arn, Name=alias, FunctionVersion=version, RevisionId=current["RevisionId"]
    )
    _log(f"{alias} now serves version {version}")
    return Outcome(function_arn, version, alias, current["FunctionVersion"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("platform", help="the Docker platform to build the function's image for")
    show.add_argument("--function", required=True)
    ship = commands.add_parser("update", help="update-function-code, smoke-test the version, move the alias")
    ship.add_argument("--function", required=True)
    ship.add_argument("--image-uri", required=True, help="ECR image by digest: REPOSITORY@sha256:...")
    ship.add_argument("--alias", default="live")
    args = parser.parse_args(argv)
    import boto3
    from botocore.config import Config

    # The new version's first call runs its init (model download and load).
    client = boto3.client("lambda", config=Config(read_timeout=120, retries={"total_max_attempts": 2}))
    try:
        if args.command == "platform":
            print(platform(client, args.function))
            return 0
        print(json.dumps(update(client, args.function, args.image_uri, args.alias).summary()))
        return 0
    except (Refused, SmokeFailed) as exc:
        _log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
