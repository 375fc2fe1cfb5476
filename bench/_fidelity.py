"""Fidelity of the quantized graph: how often int8 answers with the same span as fp32 (and both as torch).

Measured on a model whose outputs mean something -- a trained QA model when one is at hand
(/work/shared/models/minilm-l6-squad), else the planted-answer model of the tests -- because on random
weights "the same span" would only measure which noise survives quantization. Reports the share of
identical top-1 spans between each pair of backends and SQuAD exact match / F1 against the gold answers.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handler import variants
from handler.engine import Answer, QAEngine
from qa_tools.squad import exact_match, f1_score, read_squad

BACKENDS = variants.NAMES  # every registered variant
PAIRS = (
    ("onnx-int8", "onnx-fp32"),
    ("onnx-int8-fast", "onnx-fp32"),
    ("onnx-fp32", "torch"),
    ("onnx-int8", "torch"),
)
_MODEL_FILES = (".json", ".safetensors", ".txt")


@dataclass(frozen=True)
class Item:
    question: str
    context: str
    gold: tuple[str, ...]


def load_items(path: Path, limit: int) -> list[Item]:
    """Answerable questions of a SQuAD-format file, in file order."""
    answerable = (Item(s.question, s.context, s.answers) for s in read_squad(path) if s.answerable)
    return list(itertools.islice(answerable, limit))


def planted_items(contexts: Sequence[str], start_word: str, end_word: str, limit: int) -> list[Item]:
    """Contexts with the planted model's answer (``start_word ... end_word``) put after a random sentence."""
    rng = random.Random(0)  # noqa: S311 - reproducible test data, not security
    items = []
    for context in contexts[:limit]:
        sentences = context.split(". ")
        answer = f"{start_word} {rng.choice(('near the river', 'in 1889', 'a stone bridge'))} {end_word}"
        sentences.insert(rng.randrange(len(sentences) + 1), answer)
        items.append(Item("What is planted here?", ". ".join(sentences), (answer,)))
    return items


def prepare(model_dir: Path, out: Path) -> Path:
    """A directory holding the model and the ONNX graphs of ``BACKENDS``, built by the builders the variant
    registry names, as publish builds them (cached when called inside ``_publish.cached_export``)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file() and path.suffix in _MODEL_FILES and not (out / path.name).exists():
            (out / path.name).symlink_to(path.resolve())
    for name in BACKENDS:
        variant = variants.get(name)
        if variant.builder and not (out / variant.weight_file).is_file():
            variants.resolve(variant.builder)(model_dir, out)
    return out


def answer_all(
    model_dir: Path, backend: str, items: Sequence[Item], batch: int = 8
) -> tuple[list[Answer], float]:
    engine = QAEngine.load(model_dir, backend)
    started = time.perf_counter()
    answers: list[Answer] = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        answers += [a[0] for a in engine.answer([(it.question, it.context) for it in chunk])]
    return answers, time.perf_counter() - started


def em_f1(top1: Sequence[Answer], items: Sequence[Item]) -> tuple[float, float]:
    """SQuAD exact match and F1 (as shares) of top-1 answers against each item's best gold answer."""
    pairs = list(zip(top1, items, strict=True))
    em = sum(max(exact_match(g, a.answer) for g in it.gold) for a, it in pairs)
    f1 = sum(max(f1_score(g, a.answer) for g in it.gold) for a, it in pairs)
    return em / len(pairs), f1 / len(pairs)


def measure(model_dir: Path, items: Sequence[Item]) -> dict[str, Any]:
    """Top-1 answers of every backend, compared pairwise and against the gold answers."""
    answers: dict[str, list[Answer]] = {}
    seconds: dict[str, float] = {}
    for backend in BACKENDS:
        answers[backend], seconds[backend] = answer_all(model_dir, backend, items)
    agreement = {}
    for a, b in PAIRS:
        same = sum((x.start, x.end) == (y.start, y.end) for x, y in zip(answers[a], answers[b], strict=True))
        overlap = sum(
            (x.start, x.end) != (y.start, y.end) and x.start < y.end and y.start < x.end
            for x, y in zip(answers[a], answers[b], strict=True)
        )
        agreement[f"{a} vs {b}"] = {"identical": same / len(items), "overlapping": overlap / len(items)}
    quality = {
        backend: dict(
            zip(("exact_match", "f1"), em_f1(answers[backend], items), strict=True), seconds=seconds[backend]
        )
        for backend in BACKENDS
    }
    return {"questions": len(items), "agreement": agreement, "quality": quality}
