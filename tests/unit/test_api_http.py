"""handler.api.http on the planted fake engine: every HTTP shape answers, every refusal is a JSON error.

No model and no torch: the service's engine is the fake backend (``planted_service``), so these run on the
onnx image's Python too. The end-to-end run through ``handler.app`` lives in tests/integration/test_app.py.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from handler.api import ROUTES, Shape, detect_shape, handle_http
from handler.service import QAService
from qa_tools.tiny_models import END_WORD, START_WORD
from tests.fixtures import EVENTS
from tests.fixtures.lambda_env import FakeContext

CONTEXT = f"The guide said {START_WORD} by the old bridge {END_WORD} and left."
SPAN = f"{START_WORD} by the old bridge {END_WORD}"
PREDICT_EVENTS = ("rest-predict.json", "http-api-predict.json", "function-url-predict.json")


def event(name: str, body: Any = None, **changes: Any) -> dict[str, Any]:
    loaded = json.loads((EVENTS / name).read_text())
    if body is not None:  # plain text, as API Gateway sends JSON (the function URL sample is base64)
        loaded["body"] = body if isinstance(body, str) else json.dumps(body)
        loaded["isBase64Encoded"] = False
    loaded.update(changes)
    return loaded


def call(service: QAService, evt: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = handle_http(detect_shape(evt), copy.deepcopy(evt), FakeContext(), service)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), values[0])
    return response["statusCode"], headers, json.loads(response["body"])


@pytest.fixture
def service(planted_service: Callable[..., QAService]) -> QAService:
    return planted_service()


@pytest.mark.parametrize("name", PREDICT_EVENTS)
def test_every_http_shape_answers_the_same(service: QAService, name: str) -> None:
    status, headers, body = call(service, event(name, {"question": "Where?", "context": CONTEXT}))
    assert (status, body["answer"]) == (200, SPAN)
    assert CONTEXT[body["start"] : body["end"]] == SPAN
    assert headers["content-type"].startswith("application/json")


def test_a_batch_and_top_k_keep_the_pipeline_shapes(service: QAService) -> None:
    inputs = [{"question": "q", "context": CONTEXT}, {"question": "q", "context": "nothing planted here"}]
    status, _, body = call(
        service, event("rest-predict.json", {"inputs": inputs, "parameters": {"top_k": 2}})
    )
    assert status == 200 and isinstance(body, list) and len(body) == 2
    assert body[0][0]["answer"] == SPAN and all(isinstance(answers, list) for answers in body)


def test_health_says_ok_and_a_failed_model_is_503(service: QAService) -> None:
    status, _, body = call(service, event("rest-health.json"))
    assert (status, body) == (200, {"status": "ok", "model": "planted-fake"})
    down = QAService(None, service.settings, unavailable="the model failed to load at init (X)")
    status, _, body = call(down, event("http-api-health.json"))
    assert (status, body["status"]) == (503, "unavailable")


def test_a_request_to_a_model_that_failed_is_503_with_retry_after(service: QAService) -> None:
    down = QAService(None, service.settings, unavailable="the model failed to load at init (X)")
    status, headers, body = call(down, event("rest-predict.json", {"question": "q", "context": "c"}))
    assert (status, body["error"]["type"]) == (503, "model_unavailable")
    assert int(headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("changes", "status", "kind"),
    [
        ({"body": "{not json"}, 400, "bad_request"),
        ({"body": json.dumps({"question": "q"})}, 422, "validation_error"),
        ({"body": json.dumps({"question": "q", "context": "c", "top_k": 0})}, 422, "validation_error"),
        ({"body": json.dumps({"question": "q", "context": "c", "colour": 1})}, 422, "validation_error"),
        ({"body": json.dumps({"question": "q", "context": "x" * 1_001})}, 413, "payload_too_large"),
        ({"body": "x" * 2_001}, 413, "payload_too_large"),  # the body limit, before any parsing
        ({"headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"body": "@@@", "isBase64Encoded": True}, 400, "bad_request"),
        ({"body": {"question": "q"}}, 400, "bad_request"),  # a malformed event: body not a string
        ({"path": "/nowhere", "resource": "/nowhere"}, 404, "not_found"),
    ],
)
def test_refusals_are_json_errors(
    service: QAService, changes: dict[str, Any], status: int, kind: str
) -> None:
    evt = event("rest-predict.json", {"question": "Where?", "context": CONTEXT})
    evt.update(changes)
    got, headers, body = call(service, evt)
    assert (got, body["error"]["type"], body["error"]["status"]) == (status, kind, status)
    assert headers["content-type"].startswith("application/json")
    assert "Traceback" not in body["error"]["message"]


def test_a_wrong_method_lists_the_allowed_ones(service: QAService) -> None:
    status, headers, body = call(service, event("rest-predict.json", httpMethod="GET"))
    assert (status, body["error"]["type"]) == (405, "method_not_allowed")
    assert headers["allow"] == ", ".join(ROUTES["/predict"])


def test_a_base64_body_is_decoded(service: QAService) -> None:
    raw = json.dumps({"question": "Where?", "context": CONTEXT}).encode()
    evt = event("http-api-predict.json", base64.b64encode(raw).decode(), isBase64Encoded=True)
    status, _, body = call(service, evt)
    assert (status, body["answer"]) == (200, SPAN)


def test_a_failing_backend_is_a_500_without_details(service: QAService) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError("secret internals at /opt/model")

    assert service.engine is not None
    service.engine.backend.logits = broken  # type: ignore[method-assign]
    status, _, body = call(service, event("rest-predict.json", {"question": "q", "context": CONTEXT}))
    assert (status, body["error"]["type"]) == (500, "internal_error")
    assert "secret" not in body["error"]["message"]


def test_the_openapi_document_lists_the_routes(service: QAService) -> None:
    status, _, body = call(service, event("rest-health.json", path="/openapi.json", resource="/openapi.json"))
    assert status == 200 and "/predict" in body["paths"] and "/openapi.json" not in body["paths"]


def test_the_shapes_are_detected_from_the_events() -> None:
    shapes = [detect_shape(event(name)) for name in PREDICT_EVENTS]
    assert shapes == [Shape.REST_V1, Shape.HTTP_V2, Shape.FUNCTION_URL]
