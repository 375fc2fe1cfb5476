"""The QA engine end to end on tiny models: exact spans from planted models, invariants from random ones."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.engine import Answer, QAEngine, QAParams
from handler.errors import InvalidInput
from qa_tools.tiny_models import END_WORD, START_WORD, PlantedModel, build_planted_model

FILLER = ["alpha", "beta", "gamma", "delta", "epsilon", "theta", "kappa", "sigma", "omega", "river", "city"]
ANSWER = f"{START_WORD} of the old {END_WORD}"
QUESTION = "Which animal is it?"


@pytest.fixture(scope="module")
def planted(planted_model: PlantedModel) -> QAEngine:
    return QAEngine.load(planted_model.path)


@pytest.fixture(scope="module")
def planted_bert_engine(planted_bert: PlantedModel) -> QAEngine:
    return QAEngine.load(planted_bert.path)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> QAEngine:
    return QAEngine.load(tiny_model_dir)


def filler(n: int, offset: int = 0) -> list[str]:
    return [FILLER[(i + offset) % len(FILLER)] for i in range(n)]


def context_with_answer(n_words: int, at: int) -> tuple[str, int]:
    """``n_words`` filler words with ``ANSWER`` inserted before word ``at``; returns it and the answer's start."""
    words = filler(n_words)
    prefix = " ".join(words[:at])
    context = " ".join([*words[:at], ANSWER, *words[at:]]) + "."
    return context, len(prefix) + 1 if prefix else 0


def windows_covering(engine: QAEngine, context: str, start: int, end: int, params: QAParams) -> list[int]:
    """Indices of the windows whose context tokens include characters start..end of the context."""
    found = []
    for i, w in enumerate(engine.encode([(QUESTION, context)], params).windows):
        offsets = [o for o, s in zip(w.encoding.offsets, w.encoding.sequence_ids, strict=True) if s == 1]
        if any(o[0] == start for o in offsets) and any(o[1] == end for o in offsets):
            found.append(i)
    return found


def n_context_tokens(engine: QAEngine, context: str) -> int:
    window = engine.encode([(QUESTION, context)], QAParams(max_seq_len=512)).windows[0]
    return sum(1 for s in window.encoding.sequence_ids if s == 1)


def assert_valid(answers: list[Answer], context: str) -> None:
    """What every answer list must satisfy, whatever the model says."""
    assert answers
    scores = [a.score for a in answers]
    assert scores == sorted(scores, reverse=True)
    texts = [a.answer.lower() for a in answers]
    assert len(texts) == len(set(texts))  # the same text is one answer, its scores summed
    for a in answers:
        assert a.score >= 0.0
        if a.answer == "":
            assert (a.start, a.end) == (0, 0)
            continue
        assert 0 <= a.start < a.end <= len(context)
        assert context[a.start : a.end] == a.answer
        assert a.answer == a.answer.strip()


# --- exact spans with the planted models -------------------------------------------------------------------


def test_planted_answer_in_a_short_context(planted: QAEngine) -> None:
    context, start = context_with_answer(6, 3)
    [[best]] = planted.answer([(QUESTION, context)])
    assert (best.answer, best.start, best.end) == (ANSWER, start, start + len(ANSWER))
    assert best.score > 0.99


@pytest.mark.parametrize("window", [0, 1, 2])
def test_answer_in_the_nth_window_of_a_long_context(planted: QAEngine, window: int) -> None:
    params = QAParams(max_seq_len=32, doc_stride=8)
    for at in range(60):
        context, start = context_with_answer(60, at)
        if windows_covering(planted, context, start, start + len(ANSWER), params)[:1] == [window]:
            break
    else:
        pytest.fail(f"no placement puts the answer first in window {window}")
    request = planted.encode([(QUESTION, context)], params)
    assert request.num_windows >= 3

    [[best]] = planted.predict(request)

    assert (best.answer, best.start, best.end) == (ANSWER, start, start + len(ANSWER))
    assert context[best.start : best.end] == ANSWER


def test_window_count_follows_from_the_context_length_and_stride(planted: QAEngine) -> None:
    context, _ = context_with_answer(80, 40)
    whole = planted.encode([(QUESTION, context)], QAParams(max_seq_len=512)).windows[0]
    n_context = sum(1 for s in whole.encoding.sequence_ids if s == 1)
    not_context = len(whole.encoding.ids) - n_context
    for seq, stride in [(32, 8), (48, 16), (64, 0)]:
        room = seq - not_context
        expected = 1 + math.ceil(max(0, n_context - room) / (room - stride))
        assert planted.encode(
            [(QUESTION, context)], QAParams(max_seq_len=seq, doc_stride=stride)
        ).num_windows == (expected)


@pytest.mark.parametrize(
    "context",
    [
        f"東京 😀 {START_WORD} naïve café {END_WORD} 🎉 Zürich",
        f"😀😀 {START_WORD} 北京 {END_WORD}, São Paulo",
        f"Crème brûlée ({START_WORD} résumé 🚀 {END_WORD}) façade",
        f"🎉 {START_WORD} {END_WORD} 🎉",
        f"{START_WORD} 日本語 😀 {END_WORD}",
    ],
)
def test_offsets_are_python_indices_into_the_original_context_next_to_emoji_cjk_and_accents(
    planted: QAEngine, context: str
) -> None:
    start, end = context.index(START_WORD), context.index(END_WORD) + len(END_WORD)
    [[best]] = planted.answer([(QUESTION, context)])
    assert (best.start, best.end) == (start, end)
    assert best.answer == context[start:end]


def test_answers_are_whole_words_in_the_original_casing(planted_bert_engine: QAEngine) -> None:
    # BERT lower-cases and strips accents; the answer still comes from the original text.
    context = f"Le CAFÉ {START_WORD.upper()} Ünïcode {END_WORD.title()} fin"
    [[best]] = planted_bert_engine.answer([(QUESTION, context)])
    assert best.answer == f"{START_WORD.upper()} Ünïcode {END_WORD.title()}"


def test_a_question_longer_than_max_question_len_is_truncated_and_still_answered(planted: QAEngine) -> None:
    question = "what is the name of the animal by the river " * 20  # ~200 tokens
    context, start = context_with_answer(10, 4)
    for max_question_len in (64, 5):
        params = QAParams(max_seq_len=96, doc_stride=8, max_question_len=max_question_len)
        window = planted.encode([(question, context)], params).windows[0]
        assert sum(1 for s in window.encoding.sequence_ids if s == 0) <= max_question_len
        [[best]] = planted.answer([(question, context)], params)
        assert (best.answer, best.start) == (ANSWER, start)


def test_a_long_question_with_a_small_max_seq_len_is_rejected_or_answered_never_crashes(
    planted: QAEngine,
) -> None:
    question = "what is the name of the animal by the river " * 20
    context, start = context_with_answer(30, 12)
    with pytest.raises(InvalidInput, match="no room"):
        planted.answer([(question, context)], QAParams(max_seq_len=16, doc_stride=2))
    [[best]] = planted.answer(
        [(question, context)], QAParams(max_seq_len=16, doc_stride=5, max_question_len=4)
    )
    assert (best.answer, best.start) == (ANSWER, start)


def test_null_answer_wins_without_markers_when_impossible_answers_are_allowed(planted: QAEngine) -> None:
    context = " ".join(filler(40)) + "."
    [[best]] = planted.answer([(QUESTION, context)], QAParams(handle_impossible_answer=True))
    assert best == Answer(answer="", score=best.score, start=0, end=0)
    assert best.score > 0.9


def test_null_answer_over_several_windows(planted: QAEngine) -> None:
    params = QAParams(max_seq_len=32, doc_stride=8, handle_impossible_answer=True)
    no_answer = " ".join(filler(60)) + "."
    assert planted.encode([(QUESTION, no_answer)], params).num_windows >= 3
    [[best]] = planted.answer([(QUESTION, no_answer)], params)
    assert best.answer == ""
    # One window with the answer is enough: the null score is the minimum over windows.
    context, start = context_with_answer(60, 45)
    answers = planted.answer([(QUESTION, context)], params.model_copy(update={"top_k": 100_000}))[0]
    assert (answers[0].answer, answers[0].start) == (ANSWER, start)
    [null] = [a for a in answers if a.answer == ""]
    assert null.score < 1e-3  # the windows without the answer alone would give > 0.9


def test_without_impossible_answers_a_span_is_returned_even_without_markers(planted: QAEngine) -> None:
    context = " ".join(filler(12)) + "."
    [[best]] = planted.answer([(QUESTION, context)], QAParams(handle_impossible_answer=False))
    assert best.answer
    assert context[best.start : best.end] == best.answer


def test_with_markers_the_span_beats_the_null_answer(planted: QAEngine) -> None:
    context, start = context_with_answer(12, 5)
    answers = planted.answer([(QUESTION, context)], QAParams(handle_impossible_answer=True, top_k=3))[0]
    assert (answers[0].answer, answers[0].start) == (ANSWER, start)
    assert "" in [a.answer for a in answers[1:]]


def test_max_answer_len_cuts_off_the_planted_span(planted: QAEngine) -> None:
    context, _ = context_with_answer(12, 5)
    n_tokens = n_context_tokens(planted, f"x {ANSWER}") - 1
    [[fits]] = planted.answer([(QUESTION, context)], QAParams(max_answer_len=n_tokens))
    assert fits.answer == ANSWER
    [[cut]] = planted.answer([(QUESTION, context)], QAParams(max_answer_len=n_tokens - 1))
    assert cut.answer != ANSWER
    assert cut.score < 0.5


# --- top_k and score summing -------------------------------------------------------------------------------


@pytest.mark.parametrize("impossible", [False, True])
def test_top_k_beyond_the_possible_spans_returns_each_distinct_answer_once(
    tiny: QAEngine, impossible: bool
) -> None:
    context = "alpha beta gamma"
    window = tiny.encode([(QUESTION, context)]).windows[0]
    assert sum(1 for s in window.encoding.sequence_ids if s == 1) == 3  # one token per word
    answers = tiny.answer([(QUESTION, context)], QAParams(top_k=50, handle_impossible_answer=impossible))[0]
    assert_valid(answers, context)
    spans = {"alpha", "beta", "gamma", "alpha beta", "beta gamma", "alpha beta gamma"}
    assert {a.answer for a in answers} == spans | ({""} if impossible else set())
    one_word = tiny.answer([(QUESTION, context)], QAParams(top_k=50, max_answer_len=1))[0]
    assert {a.answer for a in one_word} == {"alpha", "beta", "gamma"}


def test_scores_of_the_same_text_add_up_within_a_window(planted: QAEngine) -> None:
    # Two copies of the answer: each copy's start/end marker gets ~half the probability mass.
    context = f"{ANSWER} and {ANSWER}"
    n_tokens = n_context_tokens(planted, f"x {ANSWER}") - 1
    answers = planted.answer([(QUESTION, context)], QAParams(top_k=5, max_answer_len=n_tokens))[0]
    assert_valid(answers, context)
    assert (answers[0].answer, answers[0].start) == (ANSWER, 0)  # the first occurrence is reported
    assert answers[0].score == pytest.approx(0.5, abs=0.01)  # 0.25 + 0.25
    assert answers[1].score < 0.01


def test_same_text_in_another_case_adds_up(planted_bert_engine: QAEngine) -> None:
    upper = ANSWER.upper()
    context = f"{upper} and {ANSWER}"
    n_tokens = n_context_tokens(planted_bert_engine, ANSWER)
    [[best]] = planted_bert_engine.answer([(QUESTION, context)], QAParams(max_answer_len=n_tokens))
    assert (best.answer, best.start) == (upper, 0)
    assert best.score == pytest.approx(0.5, abs=0.01)


def overlap_placement(engine: QAEngine, params: QAParams) -> tuple[str, int]:
    """A context whose answer lies in the overlap of the first two windows."""
    for at in range(40):
        context, start = context_with_answer(40, at)
        covered = windows_covering(engine, context, start, start + len(ANSWER), params)
        if covered[:2] == [0, 1]:
            return context, start
    raise AssertionError("no placement puts the answer in two windows")


def test_an_answer_in_two_overlapping_windows_sums_to_a_score_above_one(planted: QAEngine) -> None:
    # Like the 4.x pipeline: scores of the same text add up across windows, so they can exceed 1.
    params = QAParams(max_seq_len=32, doc_stride=12, top_k=3)
    context, start = overlap_placement(planted, params)
    answers = planted.answer([(QUESTION, context)], params)[0]
    assert_valid(answers, context)
    assert (answers[0].answer, answers[0].start) == (ANSWER, start)
    assert answers[0].score == pytest.approx(2.0, abs=0.01)


def test_a_window_starting_mid_text_does_not_split_an_answer_in_two(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # With add_prefix_space, byte-level BPE keeps the space before a window's first token in its offsets;
    # the engine strips it, so " zebra ..." and "zebra ..." stay one answer with one (summed) score.
    model = build_planted_model(tmp_path_factory.mktemp("planted-prefix"), "roberta", add_prefix_space=True)
    engine = QAEngine.load(model.path)
    params = QAParams(max_seq_len=24, doc_stride=6, top_k=3)
    for at in range(30):
        context, start = context_with_answer(60, at)
        windows = engine.encode([(QUESTION, context)], params).windows
        firsts = [
            w.encoding.offsets[next(t for t, s in enumerate(w.encoding.sequence_ids) if s == 1)][0]
            for w in windows
        ]
        if start - 1 in firsts[1:]:  # a window starts on the answer's first word, space included
            break
    else:
        pytest.fail("no placement starts a window on the answer")
    answers = engine.answer([(QUESTION, context)], params)[0]
    assert_valid(answers, context)
    assert (answers[0].answer, answers[0].start) == (ANSWER, start)
    assert answers[0].score == pytest.approx(2.0, abs=0.01)


# --- invalid input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "context"), [("", "Paris."), (" \n\t", "Paris."), ("Where?", ""), ("Where?", "   ")]
)
def test_empty_or_blank_question_or_context_is_invalid_input(
    tiny: QAEngine, question: str, context: str
) -> None:
    with pytest.raises(InvalidInput):
        tiny.answer([(question, context)])


def test_a_context_the_tokenizer_reduces_to_nothing_has_no_span(tiny_bert_dir: Path) -> None:
    # BERT's normalizer drops control and zero-width characters: no context token, so no span to offer.
    engine = QAEngine.load(tiny_bert_dir)
    context = "\u200b\x00\ufeff"
    assert not any(w.context_mask.any() for w in engine.encode([("Where?", context)]).windows)
    assert engine.answer([("Where?", context)], QAParams(top_k=5)) == [[]]
    [[null]] = engine.answer([("Where?", context)], QAParams(top_k=5, handle_impossible_answer=True))
    assert (null.answer, null.start, null.end, null.score) == ("", 0, 0, pytest.approx(1.0))


def test_one_bad_pair_rejects_the_whole_batch(tiny: QAEngine) -> None:
    with pytest.raises(InvalidInput):
        tiny.encode([("Where?", "Paris."), ("Where?", " ")])


def test_max_seq_len_above_the_model_maximum_is_invalid_input(tiny: QAEngine) -> None:
    with pytest.raises(InvalidInput, match="exceeds"):
        tiny.answer([("Where?", "Paris.")], QAParams(max_seq_len=513))
    assert tiny.answer([("Where?", "Paris.")], QAParams(max_seq_len=512))[0]


@pytest.mark.parametrize("beyond_room", [-1, 0, 1, 50])
def test_doc_stride_that_leaves_no_new_tokens_is_invalid_input(tiny: QAEngine, beyond_room: int) -> None:
    question, context = "Where?", " ".join(filler(60))
    window = tiny.encode([(question, "Paris.")], QAParams(max_seq_len=32)).windows[0]
    room = 32 - sum(1 for s in window.encoding.sequence_ids if s != 1)  # context tokens per window
    params = QAParams(max_seq_len=32, doc_stride=room + beyond_room)
    if beyond_room < 0:
        assert tiny.encode([(question, context)], params).num_windows > 1
    else:
        with pytest.raises(InvalidInput, match="doc_stride"):
            tiny.answer([(question, context)], params)


# --- BERT-style and RoBERTa-style inputs -------------------------------------------------------------------


def test_bert_models_receive_segment_ids_and_roberta_models_do_not(
    tiny_bert_dir: Path, tiny_roberta_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering

    for model_dir, uses_types in ((tiny_bert_dir, True), (tiny_roberta_dir, False)):
        engine = QAEngine.load(model_dir)
        request = engine.encode([("Where is it?", "Paris is a city on a river.")])
        inputs = engine.tokenizer.model_inputs(request.windows)
        assert (inputs["token_type_ids"].any()) == uses_types
        model = AutoModelForQuestionAnswering.from_pretrained(model_dir).eval()
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_types else [])
        with torch.inference_mode():
            expected = model(**{k: torch.from_numpy(inputs[k]) for k in names})
        start, end = engine.backend.logits(inputs)
        assert start == pytest.approx(expected.start_logits.numpy(), abs=1e-5)
        assert end == pytest.approx(expected.end_logits.numpy(), abs=1e-5)


# --- batching ----------------------------------------------------------------------------------------------

PAIRS = [
    ("Where is the city?", "Paris is the capital and most populous city of France, on the river."),
    ("Who?", " ".join(filler(70))),  # several windows
    ("What is it?", "東京 😀 café Zürich crème brûlée."),
]
BATCH_PARAMS = QAParams(top_k=3, max_seq_len=32, doc_stride=8)


def assert_same_answers(got: list[list[Answer]], expected: list[list[Answer]]) -> None:
    assert [[(a.answer, a.start, a.end) for a in pair] for pair in got] == [
        [(a.answer, a.start, a.end) for a in pair] for pair in expected
    ]
    for got_pair, expected_pair in zip(got, expected, strict=True):
        assert [a.score for a in got_pair] == pytest.approx([a.score for a in expected_pair], rel=1e-4)


def test_a_batch_of_pairs_answers_like_each_pair_alone(tiny: QAEngine) -> None:
    alone = [tiny.answer([pair], BATCH_PARAMS)[0] for pair in PAIRS]
    assert tiny.encode(PAIRS, BATCH_PARAMS).num_windows > len(PAIRS)
    assert_same_answers(tiny.answer(PAIRS, BATCH_PARAMS), alone)


@pytest.mark.parametrize("group", [2, 3, 64])
def test_window_group_size_does_not_change_answers(tiny_model_dir: Path, group: int) -> None:
    one_by_one = QAEngine.load(tiny_model_dir, max_batch_windows=1).answer(PAIRS, BATCH_PARAMS)
    grouped = QAEngine.load(tiny_model_dir, max_batch_windows=group).answer(PAIRS, BATCH_PARAMS)
    assert_same_answers(grouped, one_by_one)


def test_answers_come_back_in_the_order_of_the_pairs(planted: QAEngine) -> None:
    contexts = [context_with_answer(20, at) for at in (2, 9, 15)]
    results = planted.answer([(QUESTION, c) for c, _ in contexts], QAParams(max_seq_len=24, doc_stride=4))
    assert [r[0].start for r in results] == [start for _, start in contexts]


# --- invariants on random models ---------------------------------------------------------------------------

WORDS = [
    *FILLER,
    "café",
    "Zürich",
    "東京",
    "😀",
    "🚀",
    "naïve",
    "42",
    "(x)",
    "rock'n'roll",
    "e-mail",
    "\n",
    "  ",
]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=80),
    question=st.lists(st.sampled_from(FILLER), min_size=1, max_size=8).map(" ".join),
    top_k=st.integers(min_value=1, max_value=6),
    max_seq_len=st.integers(min_value=16, max_value=64),
    doc_stride=st.integers(min_value=0, max_value=12),
    max_answer_len=st.integers(min_value=1, max_value=20),
    impossible=st.booleans(),
)
def test_invariants_on_random_inputs(
    tiny: QAEngine,
    words: list[str],
    question: str,
    top_k: int,
    max_seq_len: int,
    doc_stride: int,
    max_answer_len: int,
    impossible: bool,
) -> None:
    context = " ".join(words)
    params = QAParams(
        top_k=top_k,
        max_seq_len=max_seq_len,
        doc_stride=doc_stride,
        max_answer_len=max_answer_len,
        handle_impossible_answer=impossible,
    )
    try:
        request = tiny.encode([(question, context)], params)
    except InvalidInput as exc:
        # Only three legitimate reasons: a question that leaves no room for context (whatever the context),
        # a blank context, or a stride that leaves no room for new context tokens.
        if "leaves no room" in str(exc):
            with pytest.raises(InvalidInput, match="leaves no room"):
                tiny.encode([(question, "x")], QAParams(max_seq_len=max_seq_len, doc_stride=0))
            return
        window = tiny.encode([(question, "x")], QAParams(max_seq_len=max_seq_len, doc_stride=0)).windows[0]
        room = max_seq_len - sum(1 for s in window.encoding.sequence_ids if s != 1)
        assert not context.strip() or doc_stride >= room
        return
    [answers] = tiny.predict(request)
    assert_valid(answers, context)
    assert len(answers) <= top_k
    if request.num_windows == 1:
        assert all(a.score <= 1.0 + 1e-6 for a in answers)
    assert tiny.answer([(question, context)], params) == [answers]  # deterministic
