"""What a caller sees for each error: one status and type per cause, one body shape, nothing leaked."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from handler.api.errors import (
    STATUS,
    BadRequest,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    failure,
)
from handler.errors import InvalidInput, LimitExceeded, ModelUnavailable, QAError, TimeBudgetExceeded

EXPECTED = {
    BadRequest: (400, "bad_request"),
    NotFound: (404, "not_found"),
    LimitExceeded: (413, "payload_too_large"),
    TimeBudgetExceeded: (413, "time_budget_exceeded"),
    UnsupportedMediaType: (415, "unsupported_media_type"),
    InvalidRequest: (422, "validation_error"),
    InvalidInput: (422, "invalid_input"),
    ModelUnavailable: (503, "model_unavailable"),
}


@pytest.mark.parametrize("error", sorted(EXPECTED, key=lambda c: c.__name__))
def test_each_error_has_its_status_and_type(error: type[QAError]) -> None:
    fail = failure(error("what went wrong"))
    assert (fail.status, fail.type) == EXPECTED[error]
    assert fail.body() == {"error": {"type": fail.type, "message": "what went wrong", "status": fail.status}}


def test_every_listed_error_is_tested() -> None:
    assert set(STATUS) - {MethodNotAllowed} == set(EXPECTED)


def test_a_subclass_takes_its_nearest_listed_base() -> None:
    class Oversized(LimitExceeded):
        pass

    assert failure(Oversized("x")).status == 413


def test_headers_for_retry_and_method() -> None:
    assert failure(ModelUnavailable("down")).headers == {"Retry-After": "60"}
    fail = failure(MethodNotAllowed("/predict accepts POST", ("POST",)))
    assert (fail.status, fail.headers) == (405, {"Allow": "POST"})
    proxy = fail.proxy()
    assert proxy["headers"] == {"Content-Type": "application/json", "Allow": "POST"}
    assert proxy["isBase64Encoded"] is False and proxy["statusCode"] == 405


def test_a_bug_is_a_500_that_shows_nothing_of_it() -> None:
    fail = failure(KeyError("secret request text"))
    assert (fail.status, fail.type) == (500, "internal_error")
    assert "secret" not in fail.json()


def test_contract_violations_name_the_field() -> None:
    class Body(BaseModel):
        top_k: int

    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"top_k": "many"})
    fail = failure(caught.value)
    assert (fail.status, fail.type) == (422, "validation_error")
    assert fail.message.startswith("top_k:") and "many" not in fail.message
