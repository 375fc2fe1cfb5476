"""Question/context windows, exactly as the classic transformers 4.x QA pipeline builds them.

Uses the `tokenizers` library on ``tokenizer.json`` directly (not transformers), so the ONNX path never has
to import transformers. A long context overflows into several windows that overlap by ``doc_stride`` tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from handler.errors import InvalidInput
from handler.model_files import DirectoryFiles, ModelFiles

# The pipeline's defaults: max_seq_len = min(model_max_length, 384), doc_stride = min(max_seq_len // 2, 128).
DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128
# Model types whose position ids start after pad_token_id (RoBERTa's 514 embeddings hold 512 tokens).
POSITIONS_AFTER_PADDING = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
        "camembert",
        "longformer",
        "data2vec-text",
        "roberta-prelayernorm",
    }
)


def _token_content(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens either as strings or as AddedToken dicts."""
    if isinstance(value, dict):
        return value.get("content")
    return value


@dataclass(frozen=True)
class Window:
    """One model input: a question with a slice of its context, and where that slice came from."""

    pair: int
    encoding: Encoding

    @property
    def context_mask(self) -> np.ndarray:
        """True for tokens of the context (sequence 1): the only tokens an answer may start or end on."""
        return np.array([sid == 1 for sid in self.encoding.sequence_ids], dtype=bool)


class WindowTokenizer:
    """Turns (question, context) pairs into overflowing windows with offsets into the original context."""

    def __init__(
        self, tokenizer: Tokenizer, *, model_max_length: int, cls_token_id: int | None, pad_token_id: int
    ) -> None:
        self._tok = tokenizer
        self._tok.no_padding()
        self.model_max_length = model_max_length
        self.cls_token_id = cls_token_id
        self.pad_token_id = pad_token_id
        self._specials = tokenizer.num_special_tokens_to_add(is_pair=True)

    @classmethod
    def from_dir(cls, model_dir: Path) -> WindowTokenizer:
        return cls.from_files(DirectoryFiles(model_dir))

    @classmethod
    def from_files(cls, files: ModelFiles) -> WindowTokenizer:
        if not files.exists("tokenizer.json"):
            raise FileNotFoundError("tokenizer.json missing: publish the model with a fast tokenizer")
        tokenizer = Tokenizer.from_str(files.read_text("tokenizer.json"))
        tok_cfg = _read_json(files, "tokenizer_config.json")
        model_cfg = _read_json(files, "config.json")
        if tok_cfg.get("padding_side", "right") != "right":
            raise ValueError("only question-first (right-padded) tokenizers are supported")
        max_len = int(tok_cfg.get("model_max_length") or 0)
        positions = _usable_positions(model_cfg)
        if not 0 < max_len < 1_000_000:  # transformers writes ~1e30 when the length is unknown
            max_len = positions or DEFAULT_MAX_SEQ_LEN
        elif positions:
            max_len = min(max_len, positions)
        cls_token = _token_content(tok_cfg.get("cls_token"))
        cls_id = tokenizer.token_to_id(cls_token) if cls_token else None
        pad_id = model_cfg.get("pad_token_id")
        if pad_id is None:
            pad_token = _token_content(tok_cfg.get("pad_token"))
            pad_id = (tokenizer.token_to_id(pad_token) if pad_token else None) or 0
        return cls(tokenizer, model_max_length=max_len, cls_token_id=cls_id, pad_token_id=int(pad_id))

    def resolve(self, max_seq_len: int | None, doc_stride: int | None) -> tuple[int, int]:
        """The pipeline's defaults, derived from the model's maximum length."""
        seq = max_seq_len if max_seq_len is not None else min(self.model_max_length, DEFAULT_MAX_SEQ_LEN)
        stride = doc_stride if doc_stride is not None else min(seq // 2, DEFAULT_DOC_STRIDE)
        if seq > self.model_max_length:
            raise InvalidInput(f"max_seq_len {seq} exceeds the model's maximum of {self.model_max_length}")
        return seq, stride

    def windows(
        self,
        pair: int,
        question: str,
        context: str,
        *,
        max_seq_len: int,
        doc_stride: int,
        max_question_len: int,
    ) -> list[Window]:
        if not question.strip():
            raise InvalidInput("question cannot be empty")
        if not context.strip():
            raise InvalidInput("context cannot be empty")
        self._tok.no_truncation()
        q_enc = self._tok.encode(question, add_special_tokens=False)
        if len(q_enc.ids) > max_question_len:
            question = question[: _prefix_end(q_enc, max_question_len)]
            # Count again: a cut text does not always re-encode to the same tokens (byte-level BPE).
            q_enc = self._tok.encode(question, add_special_tokens=False)
        room = max_seq_len - len(q_enc.ids) - self._specials
        if room <= 0:
            raise InvalidInput(f"max_seq_len {max_seq_len} leaves no room for the context after the question")
        if doc_stride >= room:
            raise InvalidInput(
                f"doc_stride {doc_stride} must be smaller than the {room} context tokens that fit in a window"
            )
        self._tok.enable_truncation(max_seq_len, stride=doc_stride, strategy="only_second")
        enc = self._tok.encode(question, context)
        return [Window(pair, e) for e in (enc, *enc.overflowing)]

    def model_inputs(self, windows: list[Window]) -> dict[str, np.ndarray]:
        """Right-pad a group of windows to its longest member: one batch for the backend."""
        width = max(len(w.encoding.ids) for w in windows)
        ids = np.full((len(windows), width), self.pad_token_id, dtype=np.int64)
        types = np.zeros((len(windows), width), dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for row, w in enumerate(windows):
            n = len(w.encoding.ids)
            ids[row, :n] = w.encoding.ids
            types[row, :n] = w.encoding.type_ids
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _prefix_end(enc: Encoding, max_tokens: int) -> int:
    """End (in characters) of the longest prefix of at most ``max_tokens`` tokens that splits no character.

    Byte-level BPE splits a multi-byte character (emoji, CJK) into several tokens that share its offsets;
    cutting after the first of them would keep the whole character and so more tokens than asked for.
    """
    offsets = enc.offsets
    for last in range(max_tokens - 1, -1, -1):
        if offsets[last + 1][0] >= offsets[last][1]:
            return offsets[last][1]
    return offsets[max_tokens - 1][1]  # the first character alone is longer: keep it whole


def _usable_positions(model_cfg: dict[str, Any]) -> int | None:
    """How many tokens the position embeddings can take: fewer than configured for the RoBERTa family."""
    positions = int(model_cfg.get("max_position_embeddings") or 0)
    if positions <= 0:
        return None
    if model_cfg.get("model_type") in POSITIONS_AFTER_PADDING:
        positions -= int(model_cfg.get("pad_token_id") or 0) + 1
    return positions


def _read_json(files: ModelFiles, key: str) -> dict[str, Any]:
    return json.loads(files.read_text(key)) if files.exists(key) else {}
