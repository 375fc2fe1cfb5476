"""Bulk input: JSONL items (one ``{"id"?, "question", "context", ...}`` per line) or a SQuAD-format JSON file,
read as numbered lines so every problem can name its line.

SQuAD files become items with their question ids and gold ``answers`` (an empty list: unanswerable), the
same items ``convert`` writes as JSONL for a cloud job. An item without a usable ``id`` is known by its line
number: its result carries ``"line": N`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handler.api import GOLD, ID, item_id
from handler.errors import QAError
from qa_tools.squad import read_squad

FORMATS = ("jsonl", "squad")
LINE = "line"

Key = tuple[str, str]  # ("id", JSON of the id) or ("line", the number): 1 and "1" are different ids


@dataclass(frozen=True)
class Line:
    number: int  # 1-based: the line in a JSONL file, the question in a SQuAD file
    item: dict[str, Any] | None  # None when the line is not an item
    problem: str = ""  # why it is not
    size: int = 0  # bytes of the item as a JSONL line: what the ItemBatcher's byte limit counts


def detect_format(path: Path) -> str:
    """A ``.json`` file is SQuAD-format; anything else (``.jsonl``, ``.ndjson``, ...) is JSONL."""
    return "squad" if Path(path).suffix.lower() == ".json" else "jsonl"


def read_lines(path: Path, fmt: str) -> Iterator[Line]:
    if fmt == "squad":
        yield from _squad_lines(path)
        return
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                yield Line(number, None, f"not valid JSON ({exc})")
                continue
            if not isinstance(item, dict):
                yield Line(number, None, "an item must be a JSON object")
                continue
            yield Line(number, item, size=len(raw.rstrip(b"\r\n")) + 1)


def _squad_lines(path: Path) -> Iterator[Line]:
    try:
        questions = list(read_squad(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a SQuAD-format file ({type(exc).__name__}: {exc})") from None
    for number, q in enumerate(questions, start=1):
        item = {ID: q.id, "question": q.question, "context": q.context, GOLD: list(q.answers)}
        yield Line(number, item, size=len(json.dumps(item, ensure_ascii=False).encode()) + 1)


def count_lines(path: Path, fmt: str) -> int:
    """Lines to go through (the progress bar's total); cheap next to answering them."""
    if fmt == "squad":
        return sum(1 for _ in read_squad(path))
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


def _id_key(record: Mapping[str, Any]) -> Key | None:
    try:
        ident = item_id(record)
    except QAError:  # an unusable id: the item is known by its line
        return None
    return (ID, json.dumps(ident[ID])) if ident else None


def item_key(item: Mapping[str, Any], number: int) -> Key:
    """An item's key: its id, else its line ``number``."""
    return _id_key(item) or (LINE, str(number))


def result_key(record: Mapping[str, Any]) -> Key | None:
    """A result line's key: its id, else its ``line``; None for a line that is neither."""
    line = record.get(LINE)
    return _id_key(record) or ((LINE, str(line)) if type(line) is int else None)


def gold_answers(item: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Gold answers as texts (strings or SQuAD ``{"text"}`` objects); None when the item carries none."""
    answers = item.get(GOLD)
    if not isinstance(answers, list):
        return None
    texts = [a.get("text") if isinstance(a, dict) else a for a in answers]
    return tuple(t for t in texts if isinstance(t, str))
