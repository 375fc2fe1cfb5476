"""The API contract: request and response models shared by the HTTP routes and direct invokes.

Strict pydantic models (no "3" -> 3 coercion, unknown fields rejected) so a typo in a parameter name is a
422 naming the field instead of a silently ignored default.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from handler.engine import Answer, QAParams

# Upper bounds that keep a single request's work sane; the engine checks the model-dependent ones
# (max_seq_len against the model's maximum, doc_stride against the room left in a window).
MAX_TOP_K = 50
MAX_TOKENS_PARAM = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QAParameters(_Strict):
    """Decoding parameters; defaults are the transformers 4.x question-answering pipeline's."""

    top_k: int = Field(1, ge=1, le=MAX_TOP_K, description="Number of answers to return.")
    handle_impossible_answer: bool = Field(False, description="Allow the empty 'no answer' (SQuAD 2.0).")
    max_answer_len: int = Field(15, ge=1, le=MAX_TOKENS_PARAM, description="Longest answer, in tokens.")
    max_seq_len: int | None = Field(
        None, ge=8, le=MAX_TOKENS_PARAM, description="Window length in tokens; default min(model max, 384)."
    )
    doc_stride: int | None = Field(
        None, ge=0, le=MAX_TOKENS_PARAM, description="Overlap of windows in tokens; default 128."
    )
    max_question_len: int = Field(64, ge=1, le=MAX_TOKENS_PARAM, description="Question tokens kept.")

    def to_engine(self) -> QAParams:
        return QAParams(**self.model_dump())


class QAInput(_Strict):
    question: str = Field(min_length=1, description="The question.")
    context: str = Field(min_length=1, description="The text that may contain the answer.")

    @model_validator(mode="after")
    def _not_blank(self) -> Self:
        for name in ("question", "context"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must contain non-whitespace text")
        return self


class PredictRequest(QAParameters):
    """Either ``{"question", "context", ...parameters}`` or the Hugging Face inference-toolkit form
    ``{"inputs": {...} | [{...}, ...], "parameters": {...}}``; a list of inputs is a batch."""

    question: str | None = None
    context: str | None = None
    inputs: QAInput | list[QAInput] | None = None
    parameters: QAParameters | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        flat = self.question is not None or self.context is not None
        if flat == (self.inputs is not None):
            raise ValueError("send either 'question' and 'context', or 'inputs'")
        if flat:
            QAInput(question=self.question or "", context=self.context or "")
            if self.parameters is not None:
                raise ValueError("'parameters' goes with 'inputs'; put parameters beside 'question'")
        else:
            flat_params = self.model_fields_set & set(QAParameters.model_fields)
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
        chosen = (
            self.parameters
            if self.parameters is not None
            else QAParameters(**self.model_dump(include=set(QAParameters.model_fields)))
        )
        return chosen.to_engine()


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
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def describe_errors(errors: list[Any], limit: int = 10) -> str:
    """pydantic errors as 'field.path: message' (no input values: they may hold personal data)."""
    parts = []
    for err in errors[:limit]:
        # Drop "body" and pydantic's validator steps (e.g. "function-after[_not_blank(), QAInput]").
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body" and "[" not in str(p)) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)
