"""Short questions for emulated runs: the fidelity probes (``qa_tools.fidelity``) with two-sentence contexts.

An emulated int8 window costs seconds (a padded 384-token one ~9 s on an emulated Graviton2, 45 s for 128 tokens
on an emulated Haswell), so contexts are cut to the sentence holding the gold answer and the next one (the first
two for unanswerable probes): windows of ~60 tokens. Picked evenly across the probe file, deterministically.
"""

from __future__ import annotations

import re

from qa_tools.fidelity import PROBES
from qa_tools.squad import SquadItem, read_squad

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SENTENCES = 2


def _short_context(item: SquadItem) -> str:
    sentences = _SENTENCE_END.split(item.context)
    first = 0
    if item.answers:
        first = next((i for i, s in enumerate(sentences) if item.answers[0] in s), 0)
    return " ".join(sentences[first : first + SENTENCES])


def short_questions(count: int) -> list[dict[str, str]]:
    """``count`` probes as ``{"id", "question", "context"}``, spread over the file, contexts shortened."""
    items = list(read_squad(PROBES))
    step = max(1, len(items) // max(count, 1))
    picked = items[::step][:count]
    return [{"id": i.id, "question": i.question, "context": _short_context(i)} for i in picked]
