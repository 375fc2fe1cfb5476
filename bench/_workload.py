"""The benchmark's text: SQuAD-format articles (or generated ones), and the requests cut from them.

Requests are direct-invoke payloads, ``{"inputs": [{"question", "context"}, ...]}``, batches of 8 questions:

* ``short`` -- a SQuAD paragraph each (the dataset's own contexts, ~150 tokens);
* ``384`` -- a context cut to fill one 384-token window with its question exactly (the window size every
  configuration uses by default, so the per-window cost at full length);
* ``long`` -- one ~1,000-token document (consecutive paragraphs of an article), 8 questions about it; each
  question needs several overlapping windows (4 at 384 tokens with stride 128).

Token counts come from the benchmark model's own tokenizer, so every configuration sees the same windows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

BATCH = 8
WINDOW_TOKENS = 384
LONG_TOKENS = 1000
SHORT_RANGE = (100, 200)  # context tokens of a "~150-token" SQuAD paragraph
_PAIR_SPECIALS = 4  # RoBERTa: <s> question </s></s> context </s>


@dataclass(frozen=True)
class Paragraph:
    context: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: tuple[Paragraph, ...]


@dataclass
class Workload:
    name: str
    description: str
    payloads: list[dict[str, Any]] = field(default_factory=list)
    context_tokens: list[int] = field(default_factory=list)


def load_squad(path: Path) -> list[Article]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    return [
        Article(
            a.get("title", ""),
            tuple(
                Paragraph(p["context"], tuple(q["question"] for q in p["qas"]))
                for p in a["paragraphs"]
                if p["qas"]
            ),
        )
        for a in data
    ]


_PLACES = [
    "Vienna",
    "Lisbon",
    "Kyoto",
    "Quebec",
    "Nairobi",
    "Lima",
    "Oslo",
    "Dublin",
    "Krakow",
    "Adelaide",
    "Porto",
    "Seville",
]
_NOUNS = [
    "bridge",
    "library",
    "harbour",
    "station",
    "cathedral",
    "market",
    "canal",
    "theatre",
    "factory",
    "garden",
    "tower",
    "school",
]
_ACTORS = ["council", "university", "railway", "company", "navy", "guild", "church", "city"]


def generate_articles(count: int = 35, paragraphs: int = 30, seed: int = 0) -> list[Article]:
    """Deterministic pseudo-English for a machine without the SQuAD file: paragraphs of SQuAD-like length
    from a small vocabulary, each with questions about its sentences."""
    rng = random.Random(seed)  # noqa: S311 - reproducible text, not security
    articles = []
    for a in range(count):
        paras = []
        for _ in range(paragraphs):
            sentences, questions = [], []
            for _ in range(rng.randint(5, 8)):
                actor, noun, place = rng.choice(_ACTORS), rng.choice(_NOUNS), rng.choice(_PLACES)
                year = rng.randint(1500, 2020)
                sentences.append(
                    f"In {year}, the {actor} of {place} rebuilt the old {noun} near the "
                    f"{rng.choice(_NOUNS)}, which had stood there since {year - rng.randint(10, 300)}."
                )
                questions.append(f"When did the {actor} of {place} rebuild the {noun}?")
            paras.append(Paragraph(" ".join(sentences), tuple(questions)))
        articles.append(Article(f"Generated {a}", tuple(paras)))
    return articles


def corpus(articles: list[Article]) -> Iterator[str]:
    """Text to train the benchmark tokenizer on."""
    for article in articles:
        for p in article.paragraphs:
            yield p.context
            yield from p.questions


class Cutter:
    """Cuts texts into pieces of a given number of tokens, at token boundaries, with the model's tokenizer."""

    def __init__(self, tokenizer_json: Path) -> None:
        self.tok = Tokenizer.from_file(str(tokenizer_json))

    def count(self, text: str) -> int:
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def pieces(self, text: str, sizes: Iterable[int]) -> Iterator[tuple[str, int]]:
        """Consecutive pieces of ``text``, the n-th at most ``sizes``'s n-th value in tokens, with their
        token counts; stops when the text runs out. A piece re-tokenized on its own can take a token or two
        more (its first word loses the space before it), so it is trimmed until it fits."""
        offsets = self.tok.encode(text, add_special_tokens=False).offsets
        start = 0
        for size in sizes:
            if start + size > len(offsets):
                return
            end = start + size
            while end > start:
                piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
                tokens = self.count(piece)
                if tokens <= size:
                    yield piece, tokens
                    break
                end -= 1
            start += size


def build(articles: list[Article], tokenizer_json: Path, counts: dict[str, int]) -> dict[str, Any]:
    """``{"first": payload, "workloads": {name: summary}, name: [payload, ...]}`` for the children.

    ``counts`` is the number of requests per workload; "first" is one question over one short paragraph.
    """
    cut = Cutter(tokenizer_json)
    workloads = [
        _short(articles, cut, counts["short"] + 1),
        _window(articles, cut, counts["384"]),
        _long(articles, cut, counts["long"]),
    ]
    first = workloads[0].payloads.pop(0)["inputs"][0]
    out: dict[str, Any] = {"first": first, "workloads": {}}
    for w in workloads:
        tokens = sorted(w.context_tokens)
        out["workloads"][w.name] = {
            "description": w.description,
            "requests": len(w.payloads),
            "median_context_tokens": tokens[len(tokens) // 2],
        }
        out[w.name] = w.payloads
    return out


def _batches(pairs: Iterator[tuple[str, str, int]], count: int, workload: Workload) -> Workload:
    batch: list[dict[str, str]] = []
    for question, context, tokens in pairs:
        batch.append({"question": question, "context": context})
        workload.context_tokens.append(tokens)
        if len(batch) == BATCH:
            workload.payloads.append({"inputs": batch})
            batch = []
            if len(workload.payloads) == count:
                return workload
    raise ValueError(f"not enough text for {count} '{workload.name}' requests")


def _short(articles: list[Article], cut: Cutter, count: int) -> Workload:
    def pairs() -> Iterator[tuple[str, str, int]]:
        for p in (p for article in articles for p in article.paragraphs):
            tokens = cut.count(p.context)
            if SHORT_RANGE[0] <= tokens <= SHORT_RANGE[1]:
                yield p.questions[0], p.context, tokens

    return _batches(pairs(), count, Workload("short", "one paragraph per question (~150 tokens)"))


def _article_text(article: Article) -> tuple[str, list[str]]:
    """The article as one text (paragraphs in order) and its questions in the same order."""
    text = "\n".join(p.context for p in article.paragraphs)
    return text, [q for p in article.paragraphs for q in p.questions]


def _window(articles: list[Article], cut: Cutter, count: int) -> Workload:
    def pairs() -> Iterator[tuple[str, str, int]]:
        for article in articles:
            text, questions = _article_text(article)
            budgets = (WINDOW_TOKENS - _PAIR_SPECIALS - cut.count(q) for q in questions)
            for question, (piece, tokens) in zip(questions, cut.pieces(text, budgets), strict=False):
                yield question, piece, tokens

    return _batches(pairs(), count, Workload("384", "question + context = one full 384-token window"))


def _long(articles: list[Article], cut: Cutter, count: int) -> Workload:
    def pairs() -> Iterator[tuple[str, str, int]]:
        for article in articles:
            text, questions = _article_text(article)
            documents = cut.pieces(text, iter(lambda: LONG_TOKENS, None))
            for k, (document, tokens) in enumerate(documents):
                picked = questions[k * BATCH : (k + 1) * BATCH]
                if len(picked) == BATCH:  # 8 questions about one document: one request
                    yield from ((q, document, tokens) for q in picked)

    return _batches(pairs(), count, Workload("long", "8 questions about one ~1,000-token document"))
