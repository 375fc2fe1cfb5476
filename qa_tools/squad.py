"""The SQuAD format and its official scoring, for evaluation and bulk jobs.

Reading: SQuAD-format JSON (``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``) as flat
items. Scoring: the SQuAD 2.0 evaluation script's rules (``evaluate-v2.0.py``): answers normalised (lower case,
no punctuation, no articles a/an/the, single spaces); a question with no non-empty gold answer is unanswerable
and only the empty prediction matches it; per question the best score over its gold answers; EM and F1 over
all questions and separately over HasAns and NoAns.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True)
class SquadItem:
    id: str
    question: str
    context: str
    answers: tuple[str, ...] = field(default=())  # gold texts; empty for an unanswerable question

    @property
    def answerable(self) -> bool:
        return any(normalize_answer(a) for a in self.answers)


def read_squad(path: Path) -> Iterator[SquadItem]:
    """Every question of a SQuAD-format file, in file order (unanswerable ones carry no answers)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                impossible = qa.get("is_impossible", False)
                gold = () if impossible else tuple(a["text"] for a in qa.get("answers", []))
                yield SquadItem(str(qa["id"]), qa["question"], paragraph["context"], gold)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = normalize_answer(gold).split(), normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _golds(answers: Sequence[str]) -> list[str]:
    return [a for a in answers if normalize_answer(a)] or [""]


def evaluate(items: Sequence[SquadItem], predictions: Mapping[str, str]) -> dict[str, float]:
    """The official report (percentages): exact, f1, total and the HasAns_/NoAns_ splits when present.

    Questions without a prediction are skipped (the official script warns and scores them 0; a bulk job
    evaluates what it answered), so ``total`` says how many were scored.
    """
    scored = [(item, predictions[item.id]) for item in items if item.id in predictions]
    report: dict[str, float] = {}
    groups = {
        "": scored,
        "HasAns_": [s for s in scored if s[0].answerable],
        "NoAns_": [s for s in scored if not s[0].answerable],
    }
    for prefix, group in groups.items():
        if not group and prefix:
            continue
        n = len(group)
        exact = sum(max(exact_match(g, pred) for g in _golds(item.answers)) for item, pred in group)
        f1 = sum(max(f1_score(g, pred) for g in _golds(item.answers)) for item, pred in group)
        report[f"{prefix}exact"] = 100.0 * exact / n if n else 0.0
        report[f"{prefix}f1"] = 100.0 * f1 / n if n else 0.0
        report[f"{prefix}total"] = float(n)
    return report
