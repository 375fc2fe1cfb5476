"""The fidelity probe set: a well-formed SQuAD 2.0 file, large and varied enough to measure span agreement."""

from __future__ import annotations

import json
from typing import Any

from qa_tools.fidelity import PROBES
from qa_tools.squad import read_squad


def raw_questions() -> list[tuple[str, dict[str, Any]]]:
    """Every (context, qa) pair of the raw JSON, in file order."""
    doc = json.loads(PROBES.read_text(encoding="utf-8"))
    return [
        (paragraph["context"], qa)
        for article in doc["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def test_read_squad_sees_enough_answerable_and_unanswerable_questions() -> None:
    items = list(read_squad(PROBES))
    answerable = [item for item in items if item.answerable]
    unanswerable = [item for item in items if not item.answerable]
    assert len(answerable) >= 200
    assert len(unanswerable) >= 10


def test_ids_are_unique() -> None:
    ids = [item.id for item in read_squad(PROBES)]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates


def test_every_answer_is_the_context_at_its_offset() -> None:
    wrong = [
        (qa["id"], answer["text"])
        for context, qa in raw_questions()
        for answer in qa.get("answers", [])
        if context[answer["answer_start"] : answer["answer_start"] + len(answer["text"])] != answer["text"]
    ]
    assert not wrong


def test_answerable_questions_have_a_non_empty_answer() -> None:
    empty = [
        qa["id"]
        for _, qa in raw_questions()
        if not qa.get("is_impossible", False) and not any(a["text"].strip() for a in qa.get("answers", []))
    ]
    assert not empty


def test_unanswerable_questions_are_marked_and_have_no_answers() -> None:
    unanswerable = [qa for _, qa in raw_questions() if qa["id"].split("-")[-1].startswith("u")]
    assert len(unanswerable) >= 10
    wrong = [qa["id"] for qa in unanswerable if qa.get("is_impossible") is not True or qa.get("answers")]
    assert not wrong
    marked = {qa["id"] for _, qa in raw_questions() if qa.get("is_impossible")}
    assert marked == {qa["id"] for qa in unanswerable}


def test_questions_span_many_distinct_contexts() -> None:
    assert len({item.context for item in read_squad(PROBES)}) >= 30
