"""Smoke test after a deploy, the way callers reach the function: SigV4-signed requests to the API.

The pre-traffic hook invokes the new version directly; this goes through API Gateway (IAM auth, routes, the
`live` alias), so an auth or routing regression shows before anyone else meets it. deploy.yml runs

    python -m qa_tools.smoke --api-url https://ID.execute-api.REGION.amazonaws.com/v1/ --region REGION

with the workflow's credentials (execute-api:Invoke on POST /predict and GET /health, iam/sam-deploy-role.json)
and, for a stack with ApiKeyRequired=true, the key's value in $QA_API_KEY.
Results go to stdout as JSON, one line per problem to stderr; the exit status is 1 on any problem.
The questions here are also what qa_tools/update_function.py asks a new version before it takes traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@dataclass(frozen=True)
class Question:
    question: str
    context: str


# Each has one obvious span; the check is that the answer is that text at its offsets, not a score.
QUESTIONS = (
    Question("Where do I live?", "My name is Wolfgang and I live in Berlin."),
    Question(
        "How large is the Amazon rainforest?",
        "The Amazon rainforest is the world's largest tropical rainforest. It spans about 5.5 million square "
        "kilometres and is crossed by thousands of rivers.",
    ),
)


def answer_problem(question: Question, body: Any) -> str | None:
    """What is wrong with an answer to ``question``; None when it is non-empty context text at its offsets."""
    if not isinstance(body, dict) or "error" in body:
        return f"not an answer: {json.dumps(body)[:300]}"
    answer, start, end = body.get("answer"), body.get("start"), body.get("end")
    if not isinstance(answer, str) or not answer.strip():
        return "empty answer"
    if not (isinstance(start, int) and isinstance(end, int)) or question.context[start:end] != answer:
        return f"answer {answer!r} is not the context text at {start}:{end}"
    return None


def signed(
    method: str,
    url: str,
    body: bytes | None,
    credentials: Credentials,
    region: str,
    api_key: str | None = None,
) -> urllib.request.Request:
    """A request carrying SigV4 headers for execute-api (and the API key header if the stack requires one)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if api_key:
        headers["x-api-key"] = api_key
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    headers = dict(request.headers.items())
    return urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310


Opener = Callable[[urllib.request.Request, float], Any]


def _send(request: urllib.request.Request, timeout: float, opener: Opener) -> tuple[int, Any]:
    try:
        with opener(request, timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:300]


def _open(request: urllib.request.Request, timeout: float) -> Any:
    # main() accepts https URLs only; tests pass their own opener for a loopback server.
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def smoke(
    api_url: str,
    region: str,
    credentials: Credentials,
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
    opener: Opener = _open,
) -> list[str]:
    """Problems found: GET /health must be 200 with status ok, each POST /predict a consistent answer."""
    base = api_url if api_url.endswith("/") else api_url + "/"
    problems = []
    status, body = _send(signed("GET", base + "health", None, credentials, region, api_key), timeout, opener)
    if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
        problems.append(f"GET /health: {status} {json.dumps(body)[:300]}")
    for question in QUESTIONS:
        payload = json.dumps({"question": question.question, "context": question.context}).encode()
        request = signed("POST", base + "predict", payload, credentials, region, api_key)
        status, body = _send(request, timeout, opener)
        problem = f"{status}" if status != 200 else answer_problem(question, body)
        if problem:
            problems.append(f"POST /predict {question.question!r}: {problem}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="the stack's ApiUrl output")
    parser.add_argument("--region", required=True)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("QA_API_KEY") or None,
        help="x-api-key value if the stack has ApiKeyRequired=true (default: $QA_API_KEY, kept out of argv)",
    )
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.api_url).scheme != "https":
        parser.error("--api-url must be https")
    import botocore.session

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        print("no AWS credentials found", file=sys.stderr)
        return 1
    problems = smoke(args.api_url, args.region, credentials, api_key=args.api_key)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(json.dumps({"api": args.api_url, "checks": 1 + len(QUESTIONS), "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
