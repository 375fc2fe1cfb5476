"""Request parameters: the one place for their defaults (the transformers 4.x pipeline's) and bounds.

The API contract (``handler.contract``) is built on this model, and the engine takes it already validated.
Two defaults depend on the model and are resolved by the tokenizer, the stage that uses them:
``max_seq_len`` (min(model maximum, 384)) and ``doc_stride`` (min(max_seq_len // 2, 128)).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from handler.engine.tokenization import DEFAULT_DOC_STRIDE, DEFAULT_MAX_SEQ_LEN

# Upper bounds that keep a single request's work sane; the tokenizer checks the model-dependent ones
# (max_seq_len against the model's maximum, doc_stride against the room left in a window).
MAX_TOP_K = 50
MAX_TOKENS_PARAM = 4096
MIN_SEQ_LEN = 8


class QAParams(BaseModel):
    """Decoding parameters. Strict (no "3" -> 3) and closed (a misspelt name is an error, not a default)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    top_k: int = Field(1, ge=1, le=MAX_TOP_K, description="Number of answers to return.")
    handle_impossible_answer: bool = Field(False, description="Allow the empty 'no answer' (SQuAD 2.0).")
    max_answer_len: int = Field(15, ge=1, le=MAX_TOKENS_PARAM, description="Longest answer, in tokens.")
    max_seq_len: int | None = Field(
        None,
        ge=MIN_SEQ_LEN,
        le=MAX_TOKENS_PARAM,
        description=f"Window length in tokens; default min(model maximum, {DEFAULT_MAX_SEQ_LEN}).",
    )
    doc_stride: int | None = Field(
        None,
        ge=0,
        le=MAX_TOKENS_PARAM,
        description=f"Overlap of windows in tokens; default min(max_seq_len // 2, {DEFAULT_DOC_STRIDE}).",
    )
    max_question_len: int = Field(64, ge=1, le=MAX_TOKENS_PARAM, description="Question tokens kept.")
