"""The API contract: the request and response models shared by the HTTP routes, direct invokes and the service.

Parameters, their defaults and bounds come from ``handler.engine.params.QAParams``, which the request extends;
this module adds only what is about the request's shape.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from handler.engine import Answer, QAParams

PARAMETER_NAMES = frozenset(QAParams.model_fields)


class QAInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    question: str = Field(min_length=1, description="The question.")
    context: str = Field(min_length=1, description="The text that may contain the answer.")

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        for name in ("question", "context"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must contain non-whitespace text")
        return self


class PredictRequest(QAParams):
    """Either ``{"question", "context", ...parameters}`` or the Hugging Face inference-toolkit form
    ``{"inputs": {...} | [{...}, ...], "parameters": {...}}``; a list of inputs is a batch."""

    question: str | None = None
    context: str | None = None
    inputs: QAInput | list[QAInput] | None = None
    parameters: QAParams | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        flat = self.question is not None or self.context is not None
        if flat == (self.inputs is not None):
            raise ValueError("send either 'question' and 'context', or 'inputs'")
        if flat:
            for name in ("question", "context"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name}: field required (send both 'question' and 'context')")
            QAInput(question=self.question or "", context=self.context or "")
            if self.parameters is not None:
                raise ValueError("'parameters' goes with 'inputs'; put parameters beside 'question'")
        else:
            flat_params = self.model_fields_set & PARAMETER_NAMES
            if flat_params:
                raise ValueError(f"with 'inputs', put {sorted(flat_params)} inside 'parameters'")
            if isinstance(self.inputs, list) and not self.inputs:
                raise ValueError("'inputs' must not be an empty list")
        return self

    @property
    def is_batch(self) -> bool:
        return isinstance(self.inputs, list)

    def pairs(self) -> list[tuple[str, str]]:
        if self.inputs is None:
            return [(self.question or "", self.context or "")]
        items = self.inputs if isinstance(self.inputs, list) else [self.inputs]
        return [(i.question, i.context) for i in items]

    def params(self) -> QAParams:
        if self.parameters is not None:
            return self.parameters
        return QAParams(**self.model_dump(include=set(PARAMETER_NAMES)))


class AnswerModel(BaseModel):
    answer: str = Field(description="context[start:end]; empty for 'no answer'.")
    score: float = Field(description="Probability of the span (the pipeline's score).")
    start: int = Field(description="Character offset of the answer in the context.")
    end: int = Field(description="Character offset just past the answer.")


NO_SPAN = {"answer": "", "score": 0.0, "start": 0, "end": 0}


def shape_answers(answers: list[list[Answer]], *, top_k: int, batch: bool) -> Any:
    """The pipeline's output shape: a dict for top_k == 1, a list for top_k > 1, one item per batch input."""
    items: list[Any] = []
    for found in answers:
        dicts = [a.to_dict() for a in found]
        items.append((dicts[0] if dicts else dict(NO_SPAN)) if top_k == 1 else dicts)
    return items if batch else items[0]


class ErrorDetail(BaseModel):
    type: str = Field(description="Machine-readable cause, e.g. validation_error.")
    message: str = Field(description="What is wrong, naming the field; never a stack trace or your input.")
    status: int = Field(description="The HTTP status, also for direct invokes.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
