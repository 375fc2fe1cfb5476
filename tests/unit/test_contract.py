"""The API contract: request forms, parameters in their place, field-naming errors, the output shape."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from handler.api.errors import describe_errors
from handler.contract import NO_SPAN, PredictRequest, shape_answers
from handler.engine import Answer, QAParams


def message(payload: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        PredictRequest.model_validate(payload)
    return describe_errors(caught.value.errors())


def test_flat_form_carries_its_parameters() -> None:
    request = PredictRequest.model_validate({"question": "q", "context": "c", "top_k": 2})
    assert request.pairs() == [("q", "c")] and not request.is_batch
    assert request.params() == QAParams(top_k=2)


def test_inference_toolkit_forms() -> None:
    single = PredictRequest.model_validate({"inputs": {"question": "q", "context": "c"}})
    batch = PredictRequest.model_validate(
        {
            "inputs": [{"question": "a", "context": "b"}, {"question": "c", "context": "d"}],
            "parameters": {"top_k": 3},
        }
    )
    assert single.pairs() == [("q", "c")] and not single.is_batch and single.params() == QAParams()
    assert batch.pairs() == [("a", "b"), ("c", "d")] and batch.is_batch and batch.params().top_k == 3


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"question": "q"}, "context: field required"),
        ({"context": "c"}, "question: field required"),
        ({"inputs": [{"question": "q"}]}, "inputs.0.context: Field required"),
        ({"question": " ", "context": "c"}, "question must contain non-whitespace text"),
        ({}, "send either 'question' and 'context', or 'inputs'"),
        ({"inputs": []}, "'inputs' must not be an empty list"),
        ({"inputs": {"question": "q", "context": "c"}, "top_k": 2}, "inside 'parameters'"),
        ({"question": "q", "context": "c", "parameters": {"top_k": 2}}, "'parameters' goes with 'inputs'"),
        ({"question": "q", "context": "c", "top_kk": 2}, "top_kk: Extra inputs are not permitted"),
        ({"inputs": {"question": "q", "context": "c"}, "parameters": {"bogus": 1}}, "parameters.bogus"),
    ],
)
def test_errors_name_the_field_and_what_to_do(payload: dict[str, Any], expected: str) -> None:
    assert expected in message(payload)


def test_error_messages_never_echo_the_input() -> None:
    secret = "my-private-text-1234"
    assert secret not in message({"question": 5, "context": secret, "top_k": secret})


def test_output_shape_follows_top_k_and_batch() -> None:
    found = [[Answer("Paris", 0.9, 0, 5), Answer("France", 0.1, 10, 16)], []]
    assert shape_answers(found, top_k=1, batch=True) == [found[0][0].to_dict(), NO_SPAN]
    assert shape_answers(found[:1], top_k=2, batch=False) == [a.to_dict() for a in found[0]]
    assert shape_answers([[]], top_k=3, batch=False) == []
