"""The calibration text of the int8 recipes that need one, kept apart from the probes that grade them (README.md)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from handler.engine.qa import DEFAULT_PARAMS
from handler.engine.tokenization import WindowTokenizer
from qa_tools.squad import read_squad

CALIBRATION = Path(__file__).with_name("squad2-dev.calibration.json")


def pairs(path: Path = CALIBRATION) -> list[tuple[str, str]]:
    """The (question, context) pairs of a SQuAD-format file: by default the shipped calibration set."""
    return [(item.question, item.context) for item in read_squad(path)]


def feeds(model_dir: Path, questions: Iterable[tuple[str, str]] | None = None) -> list[dict[str, np.ndarray]]:
    """Model inputs of each pair's first window (``pairs()`` unless given), cut as the serving engine cuts them."""
    tokenizer = WindowTokenizer.from_dir(model_dir)
    seq, stride = tokenizer.resolve(DEFAULT_PARAMS.max_seq_len, DEFAULT_PARAMS.doc_stride)
    return [
        tokenizer.model_inputs(
            tokenizer.windows(
                i,
                question,
                context,
                max_seq_len=seq,
                doc_stride=stride,
                max_question_len=DEFAULT_PARAMS.max_question_len,
            )[:1]
        )
        for i, (question, context) in enumerate(pairs() if questions is None else questions)
    ]
