"""Shape detection: every sample event and the distinguishing fields of each payload format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.api.events import Shape, detect_shape
from tests.fixtures import EVENTS

PREFIX_SHAPES = {
    "rest-": Shape.REST_V1,
    "bad-rest-": Shape.REST_V1,
    "http-api-": Shape.HTTP_V2,
    "bad-http-api-": Shape.HTTP_V2,
    "function-url-": Shape.FUNCTION_URL,
    "bad-function-url-": Shape.FUNCTION_URL,
    "direct-": Shape.DIRECT,
    "bad-direct-": Shape.DIRECT,
    "batch-": Shape.BATCH,
    "bad-batch-": Shape.BATCH,
}


def expected_shape(name: str) -> Shape:
    prefix = max((p for p in PREFIX_SHAPES if name.startswith(p)), key=len)
    return PREFIX_SHAPES[prefix]


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("*.json")))
def test_every_sample_event_is_recognised(name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert detect_shape(event) is expected_shape(name)


def v2(domain: str) -> dict[str, Any]:
    return {"version": "2.0", "requestContext": {"http": {"method": "GET"}, "domainName": domain}}


def test_function_urls_are_told_from_http_apis_by_their_domain() -> None:
    assert detect_shape(v2("abc123.lambda-url.eu-west-1.on.aws")) is Shape.FUNCTION_URL
    assert detect_shape(v2("abc123.execute-api.eu-west-1.amazonaws.com")) is Shape.HTTP_V2


@pytest.mark.parametrize(
    "event",
    [
        {"question": "q", "context": "c"},
        ["not", "an", "object"],
        "text",
        None,
        {"requestContext": "not an object"},
        {"requestContext": {}},  # neither httpMethod nor a v2 http block
    ],
)
def test_anything_else_is_a_direct_invoke(event: Any) -> None:
    assert detect_shape(event) is Shape.DIRECT


def test_rest_events_are_recognised_by_http_method() -> None:
    assert detect_shape({"httpMethod": "POST", "requestContext": {"stage": "v1"}}) is Shape.REST_V1
