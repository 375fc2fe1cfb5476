"""Golden answers at publish: the reference variant's answers to the probe set, for the manifest.

The fidelity gate compares variants on this machine; the golden answers let the function compare itself, on
whatever CPU Lambda gives it (``handler.api.self_check``: the pre-traffic hook and ``qa_tools.audit``), with
the same threshold.
"""

from __future__ import annotations

from pathlib import Path

from handler.engine import QAEngine
from handler.store import Golden, GoldenAnswer
from qa_tools.fidelity import PROBES
from qa_tools.fidelity.gate import BATCH, probe_set


def record(model_dir: Path, reference: str, threshold: float, probes: Path = PROBES) -> Golden:
    """``reference``'s best answer to every probe, served from ``model_dir`` as the function serves it."""
    name, items = probe_set(probes)
    engine = QAEngine.load(model_dir, reference)
    pairs = [(item.question, item.context) for item in items]
    best = [
        answers[0] for i in range(0, len(pairs), BATCH) for answers in engine.answer(pairs[i : i + BATCH])
    ]
    contexts = tuple(dict.fromkeys(item.context for item in items))
    index = {context: i for i, context in enumerate(contexts)}
    answers = tuple(
        GoldenAnswer(item.id, item.question, index[item.context], a.answer, a.start, a.end)
        for item, a in zip(items, best, strict=True)
    )
    return Golden(reference, name, threshold, contexts, answers)
