"""What a caller sees for each error: one status and type per cause, one body shape, nothing leaked."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from handler.api.errors import INTERNAL, STATUS, MethodNotAllowed, failure
from handler.errors import LimitExceeded, ModelUnavailable, QAError
from tests.fixtures import ROOT


def documented_errors() -> set[tuple[int, str]]:
    """(status, type) pairs of the error table (docs/api.md), which is what users program against."""
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    table = page.split("## Errors", 1)[1].split("\n\n")[2]
    pairs = set()
    for row in table.splitlines()[2:]:
        statuses, kinds = (cell.strip().split(" / ") for cell in row.strip("|").split("|")[:2])
        if len(statuses) == 1:  # "422 | `validation_error` / `invalid_input`"
            statuses *= len(kinds)
        pairs.update((int(s), k.strip("`")) for s, k in zip(statuses, kinds, strict=True))
    return pairs


def test_the_docs_document_exactly_the_errors_callers_can_get() -> None:
    assert documented_errors() == {*STATUS.values(), INTERNAL}


@pytest.mark.parametrize("error", sorted(STATUS, key=lambda c: c.__name__))
def test_failure_follows_the_table_with_one_body_shape(error: type[QAError]) -> None:
    fail = failure(
        error("what went wrong", ("POST",)) if error is MethodNotAllowed else error("what went wrong")
    )
    assert (fail.status, fail.type) == STATUS[error]
    assert fail.body() == {"error": {"type": fail.type, "message": "what went wrong", "status": fail.status}}


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
