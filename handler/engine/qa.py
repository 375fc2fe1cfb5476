"""The QA engine: windows -> backend logits -> spans -> answers in the original context.

Independent of Lambda. Behaves like transformers 4.x ``QuestionAnsweringPipeline`` (removed in 5.x), which
model cards and users are calibrated against. The deliberate differences (no invalid filler spans, trimmed
whitespace, max_question_len enforced, ...) are listed in docs/pipeline-parity.md with the check that proves
everything else is identical.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding

from handler.backends import Backend, load_backend
from handler.engine.decoding import window_spans
from handler.engine.params import QAParams
from handler.engine.tokenization import Window, WindowTokenizer
from handler.model_files import ModelFiles, as_model_files
from handler.variants import Variant

# Windows per backend call: bounds peak memory (batch x seq^2 attention; ONNX Runtime's arena keeps the largest
# batch's) while amortising per-call overhead. On 2 vCPUs, 2 ran as fast as 8 with the int8 graph and faster
# with torch, at a fraction of 8's activation memory (docs/performance.md, "2026-12-07: windows per forward pass").
DEFAULT_MAX_BATCH_WINDOWS = 2
DEFAULT_PARAMS = QAParams()


@dataclass(frozen=True)
class Answer:
    answer: str
    score: float
    start: int  # character offsets into the original context; answer == context[start:end]
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EncodedRequest:
    """Tokenized pairs: lets a caller check the window count (the work) before running the model."""

    pairs: Sequence[tuple[str, str]]
    windows: list[Window]
    params: QAParams

    @property
    def num_windows(self) -> int:
        return len(self.windows)

    @classmethod
    def join(cls, parts: Sequence[EncodedRequest]) -> EncodedRequest:
        """Requests tokenized apart, as one: their windows then share forward passes. Same parameters only."""
        if not parts or any(p.params != parts[0].params for p in parts):
            raise ValueError("only requests with the same parameters can be joined")
        pairs: list[tuple[str, str]] = []
        windows: list[Window] = []
        for part in parts:
            windows += [replace(w, pair=w.pair + len(pairs)) for w in part.windows]
            pairs += part.pairs
        return cls(pairs, windows, parts[0].params)


def _char_span(enc: Encoding, start: int, end: int, context: str) -> tuple[int, int]:
    """The pipeline's ``align_to_words``: widen a token span to whole words, else use token offsets.

    Surrounding whitespace is dropped: byte-level BPE tokenizers with ``add_prefix_space`` leave the space
    before a window's first token in its offsets, which would turn one answer into two (" x" and "x").
    """
    s, e = enc.offsets[start][0], enc.offsets[end][1]
    start_word, end_word = enc.token_to_word(start), enc.token_to_word(end)
    if start_word is not None and end_word is not None:
        start_chars = enc.word_to_chars(start_word, sequence_index=1)
        end_chars = enc.word_to_chars(end_word, sequence_index=1)
        if start_chars is not None and end_chars is not None:
            s, e = start_chars[0], end_chars[1]
    while s < e and context[s].isspace():
        s += 1
    while e > s and context[e - 1].isspace():
        e -= 1
    return s, e


class QAEngine:
    """Loads a model directory once; answers batches of (question, context) pairs."""

    def __init__(
        self,
        tokenizer: WindowTokenizer,
        backend: Backend,
        *,
        model_name: str = "",
        max_batch_windows: int = DEFAULT_MAX_BATCH_WINDOWS,
    ) -> None:
        self.tokenizer = tokenizer
        self.backend = backend
        self.model_name = model_name
        self.max_batch_windows = max_batch_windows

    @classmethod
    def load(cls, model: ModelFiles | Path, variant: Variant | str = "torch", **kwargs: Any) -> QAEngine:
        """From a model's files: a directory, or bytes the store holds in memory (``handler.model_files``)."""
        files = as_model_files(model)
        config = json.loads(files.read_text("config.json"))
        name = config.get("_name_or_path") or files.name
        return cls(WindowTokenizer.from_files(files), load_backend(variant, files), model_name=name, **kwargs)

    def encode(self, pairs: Sequence[tuple[str, str]], params: QAParams = DEFAULT_PARAMS) -> EncodedRequest:
        seq, stride = self.tokenizer.resolve(params.max_seq_len, params.doc_stride)
        windows: list[Window] = []
        for i, (question, context) in enumerate(pairs):
            windows += self.tokenizer.windows(
                i,
                question,
                context,
                max_seq_len=seq,
                doc_stride=stride,
                max_question_len=params.max_question_len,
            )
        return EncodedRequest(pairs, windows, params)

    def predict(self, request: EncodedRequest) -> list[list[Answer]]:
        """Runs every window through the backend in batches, then decodes each pair's answers.

        Batches take windows in order of length, so each is padded to a near neighbour's length, not to the
        longest window of the request (a batch of questions on short and long contexts pads little).
        """
        windows = request.windows
        by_length = sorted(range(len(windows)), key=lambda j: len(windows[j].encoding.ids))
        starts: list[np.ndarray] = [np.empty(0)] * len(windows)
        ends: list[np.ndarray] = [np.empty(0)] * len(windows)
        for i in range(0, len(windows), self.max_batch_windows):
            rows = by_length[i : i + self.max_batch_windows]
            s, e = self.backend.logits(self.tokenizer.model_inputs([windows[j] for j in rows]))
            if not (np.isfinite(s).all() and np.isfinite(e).all()):
                raise RuntimeError(f"the {self.backend.name} backend returned non-finite logits")
            for row, j in enumerate(rows):
                n = len(windows[j].encoding.ids)
                starts[j] = s[row, :n]
                ends[j] = e[row, :n]
        per_pair: list[list[int]] = [[] for _ in request.pairs]
        for idx, w in enumerate(request.windows):
            per_pair[w.pair].append(idx)
        return [
            self._answers(request, context, [(request.windows[j], starts[j], ends[j]) for j in idxs])
            for (_, context), idxs in zip(request.pairs, per_pair, strict=True)
        ]

    def answer(
        self, pairs: Sequence[tuple[str, str]], params: QAParams = DEFAULT_PARAMS
    ) -> list[list[Answer]]:
        return self.predict(self.encode(pairs, params))

    def _answers(
        self, request: EncodedRequest, context: str, outputs: list[tuple[Window, np.ndarray, np.ndarray]]
    ) -> list[Answer]:
        p = request.params
        # The pipeline over-fetches (top_k * 2 + 10) because word alignment can merge candidates.
        pre_top_k = p.top_k * 2 + 10
        cls_id = self.tokenizer.cls_token_id
        min_null = 1_000_000.0
        found: dict[str, dict[str, Any]] = {}  # lower-cased text -> answer; same text adds its scores
        for window, start_logits, end_logits in outputs:
            enc = window.encoding
            cls_mask = (
                np.array(enc.ids) == cls_id if cls_id is not None else np.zeros(len(enc.ids), dtype=bool)
            )
            spans, null = window_spans(
                start_logits,
                end_logits,
                window.context_mask,
                cls_mask,
                top_k=pre_top_k,
                max_answer_len=p.max_answer_len,
            )
            min_null = min(min_null, null)
            for span in spans:
                s, e = _char_span(enc, span.start, span.end, context)
                if s == e:  # only whitespace: not an answer
                    continue
                text = context[s:e]
                key = text.lower()
                if key in found:
                    found[key]["score"] += span.score
                else:
                    found[key] = {"answer": text, "score": span.score, "start": s, "end": e}
        candidates = list(found.values())
        if p.handle_impossible_answer:
            candidates.append({"answer": "", "score": min_null, "start": 0, "end": 0})
        candidates.sort(key=lambda a: a["score"], reverse=True)
        return [Answer(**a) for a in candidates[: p.top_k]]
