"""Unit-test fixtures: a real tokenizer and a fake backend, so engine, service and api tests run without a model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from handler import variants
from handler.engine import QAEngine
from handler.engine.tokenization import WindowTokenizer
from handler.service import QAService
from handler.settings import Settings
from qa_tools.tiny_models import END_WORD, MODEL_MAX_LENGTH, START_WORD, build_tokenizer, word_token_ids
from tests.fixtures.backends import FakeBackend, marker_logits


@pytest.fixture(scope="session")
def bert_tokenizer() -> Tokenizer:
    return build_tokenizer("bert")


@pytest.fixture
def planted_engine(bert_tokenizer: Tokenizer) -> Callable[..., QAEngine]:
    """A QA engine whose fake backend answers ``START_WORD ... END_WORD`` (null answer without them)."""

    def make(max_batch_windows: int = 8) -> QAEngine:
        cls_id = bert_tokenizer.token_to_id("[CLS]")
        windows = WindowTokenizer(
            Tokenizer.from_str(bert_tokenizer.to_str()),
            model_max_length=MODEL_MAX_LENGTH,
            cls_token_id=cls_id,
            pad_token_id=bert_tokenizer.token_to_id("[PAD]"),
        )
        backend = FakeBackend(
            marker_logits(
                word_token_ids(bert_tokenizer, START_WORD), word_token_ids(bert_tokenizer, END_WORD), cls_id
            )
        )
        return QAEngine(windows, backend, model_name="planted-fake", max_batch_windows=max_batch_windows)

    return make


UNIT_SETTINGS = Settings(
    model_source=Path("/opt/model"),
    model_dir=Path("/tmp/models"),
    variant=variants.get("torch"),
    max_body_bytes=2_000,
    max_context_chars=1_000,
    max_batch_size=4,
    max_windows=16,
    max_batch_windows=8,
    max_bulk_items=6,
    max_bulk_windows=40,
)


@pytest.fixture
def planted_service(planted_engine: Callable[..., QAEngine]) -> Callable[..., QAService]:
    """A ``QAService`` over the planted fake engine, with small limits (``UNIT_SETTINGS``, overridable)."""

    def make(*, max_batch_windows: int = 8, **limits: Any) -> QAService:
        settings = dataclasses.replace(UNIT_SETTINGS, max_batch_windows=max_batch_windows, **limits)
        engine = planted_engine(max_batch_windows=max_batch_windows)
        return QAService(engine, settings, info={"model": "planted-fake"})

    return make
