"""The calibration text of the int8 recipes that need one, kept apart from the probes that grade them (README.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handler.engine.qa import DEFAULT_PARAMS
from handler.engine.tokenization import WindowTokenizer
from qa_tools.squad import read_squad

CALIBRATION = Path(__file__).with_name("squad2-dev.calibration.json")


def feeds(model_dir: Path, path: Path = CALIBRATION, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """Model inputs of each pair's first window, cut as the serving engine cuts them (one window per feed)."""
    tokenizer = WindowTokenizer.from_dir(model_dir)
    seq, stride = tokenizer.resolve(DEFAULT_PARAMS.max_seq_len, DEFAULT_PARAMS.doc_stride)
    items: Sequence = list(read_squad(path))[:limit]
    return [
        tokenizer.model_inputs(
            tokenizer.windows(
                i,
                item.question,
                item.context,
                max_seq_len=seq,
                doc_stride=stride,
                max_question_len=DEFAULT_PARAMS.max_question_len,
            )[:1]
        )
        for i, item in enumerate(items)
    ]
