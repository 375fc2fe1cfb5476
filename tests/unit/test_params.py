"""QAParams: the one place where request parameters get their defaults and bounds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from handler.engine import QAParams
from handler.engine.params import MAX_TOP_K


def test_defaults_are_the_classic_pipelines() -> None:
    assert QAParams().model_dump() == {
        "top_k": 1,
        "handle_impossible_answer": False,
        "max_answer_len": 15,
        "max_seq_len": None,  # min(model maximum, 384), resolved by the tokenizer
        "doc_stride": None,  # min(max_seq_len // 2, 128), resolved by the tokenizer
        "max_question_len": 64,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"top_k": 0},
        {"top_k": MAX_TOP_K + 1},
        {"max_answer_len": 0},
        {"max_question_len": 0},
        {"max_seq_len": 7},
        {"doc_stride": -1},
        {"top_k": "3"},  # strict: no coercion
        {"handle_impossible_answer": 1},
        {"top_kk": 2},  # closed: a typo is an error
    ],
)
def test_out_of_range_wrong_type_or_unknown_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        QAParams(**params)
    assert next(iter(params)) in str(caught.value)


def test_parameters_are_immutable() -> None:
    with pytest.raises(ValidationError):
        QAParams().top_k = 3  # type: ignore[misc]
