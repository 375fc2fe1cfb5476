"""qa_tools/smoke.py against a local HTTP server on 127.0.0.1 that checks each request's SigV4 signature.

The server recomputes the signature with botocore from what it received (the signed headers, the body, the
X-Amz-Date) and the shared fake credentials, as API Gateway's IAM auth does, and answers 403 on a mismatch.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from qa_tools import smoke

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
REGION = "eu-west-1"
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>\w+)/(?P<date>\d{8})/(?P<region>[\w-]+)/execute-api/aws4_request, "
    r"SignedHeaders=(?P<headers>[\w;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def _expected_signature(method: str, url: str, headers: dict[str, str], body: bytes, signed: str) -> str:
    request = AWSRequest(
        method=method,
        url=url,
        data=body or None,
        headers={k: v for k, v in headers.items() if k.lower() in signed.split(";")},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(CREDENTIALS, "execute-api", REGION)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


class FakeApi(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[dict[str, Any]]] = []

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = f"http://{self.headers['Host']}{self.path}"
        match = AUTH.fullmatch(self.headers.get("Authorization", ""))
        ok = bool(match) and match["key"] == CREDENTIALS.access_key and match["region"] == REGION
        ok = ok and match["signature"] == _expected_signature(
            self.command, url, dict(self.headers.items()), body, match["headers"]
        )
        self.seen.append({"path": self.path, "signed": ok, "api_key": self.headers.get("x-api-key")})
        status, payload = (
            (200, self.answers[f"{self.command} {self.path}"]) if ok else (403, {"message": "Forbidden"})
        )
        if callable(payload):
            payload = payload(json.loads(body))
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = _handle

    def log_message(self, *args: object) -> None:
        pass


def _consistent_answer(request: dict[str, str]) -> dict[str, Any]:
    for question in smoke.QUESTIONS:
        if question.question == request["question"]:
            word = question.context.split()[-1].rstrip(".")
            start = question.context.index(word)
            return {"answer": word, "start": start, "end": start + len(word), "score": 0.9}
    raise AssertionError(request)


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.answers = {"GET /v1/health": {"status": "ok"}, "POST /v1/predict": _consistent_answer}
    FakeApi.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/"
    server.shutdown()
    server.server_close()


def _plain_opener(request: Any, timeout: float) -> Any:
    """Straight to the loopback server, whatever proxy the environment names."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout)


def test_a_healthy_api_passes_with_every_request_signed(api: str) -> None:
    assert smoke.smoke(api, REGION, CREDENTIALS, opener=_plain_opener, timeout=10) == []
    assert [s["path"] for s in FakeApi.seen] == ["/v1/health"] + ["/v1/predict"] * len(smoke.QUESTIONS)
    assert all(s["signed"] for s in FakeApi.seen)


def test_a_bad_signature_is_refused_by_the_server(api: str) -> None:
    """The server's check can fail: signed for another region, the signature does not match."""
    problems = smoke.smoke(api, "us-east-1", CREDENTIALS, opener=_plain_opener, timeout=10)
    assert len(problems) == 1 + len(smoke.QUESTIONS) and all("403" in p for p in problems)
    assert not any(s["signed"] for s in FakeApi.seen)


def test_a_body_changed_after_signing_is_refused(api: str) -> None:
    """The recomputed signature covers the payload: the same headers with another body do not pass."""

    def tampering(request: Any, timeout: float) -> Any:
        if request.data:
            request.data = request.data + b" "  # still valid JSON
        return _plain_opener(request, timeout)

    problems = smoke.smoke(api, REGION, CREDENTIALS, opener=tampering, timeout=10)
    assert len(problems) == len(smoke.QUESTIONS) and all("403" in p for p in problems)
    assert [s["signed"] for s in FakeApi.seen] == [True] + [False] * len(smoke.QUESTIONS)


def test_wrong_answers_and_a_bad_health_are_problems(api: str) -> None:
    FakeApi.answers = {
        "GET /v1/health": {"status": "degraded"},
        "POST /v1/predict": {"answer": "Paris", "start": 0, "end": 5},
    }
    problems = smoke.smoke(api, REGION, CREDENTIALS, opener=_plain_opener, timeout=10)
    assert problems[0].startswith("GET /health: 200")
    assert all("is not the context text" in p for p in problems[1:]) and len(problems) == 1 + len(
        smoke.QUESTIONS
    )


def test_the_api_key_is_sent_when_given(api: str) -> None:
    assert smoke.smoke(api, REGION, CREDENTIALS, api_key="k-123", opener=_plain_opener, timeout=10) == []
    assert {s["api_key"] for s in FakeApi.seen} == {"k-123"} and all(s["signed"] for s in FakeApi.seen)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"error": {"type": "x"}}, "not an answer"),
        ({"answer": " ", "start": 0, "end": 1}, "empty answer"),
        ({"answer": "Berlin", "start": 0, "end": 6}, "not the context text"),
        ("<html>", "not an answer"),
    ],
)
def test_answer_problem(body: Any, problem: str) -> None:
    assert problem in smoke.answer_problem(smoke.QUESTIONS[0], body)
    context = smoke.QUESTIONS[0].context
    start = context.index("Berlin")
    assert (
        smoke.answer_problem(smoke.QUESTIONS[0], {"answer": "Berlin", "start": start, "end": start + 6})
        is None
    )


def test_main_refuses_a_plain_http_url() -> None:
    with pytest.raises(SystemExit):
        smoke.main(["--api-url", "http://example.com/v1/", "--region", REGION])
