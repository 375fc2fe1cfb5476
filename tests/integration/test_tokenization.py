"""WindowTokenizer: overflowing windows, question truncation and offsets into the original context."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.engine.tokenization import Window, WindowTokenizer
from handler.errors import InvalidInput

CONTEXT = " ".join(
    f"{word} {i}."
    for i, word in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta"] * 12)
)
UNICODE_CONTEXT = "Le café 😀 de Zürich, 東京 🚀 et São Paulo: crème brûlée, naïve résumé 🎉."


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> WindowTokenizer:
    return WindowTokenizer.from_dir(tiny_model_dir)


def windows(
    tok: WindowTokenizer,
    question: str,
    context: str,
    *,
    max_seq_len: int = 48,
    doc_stride: int = 16,
    max_question_len: int = 64,
) -> list[Window]:
    return tok.windows(
        0,
        question,
        context,
        max_seq_len=max_seq_len,
        doc_stride=doc_stride,
        max_question_len=max_question_len,
    )


def context_positions(w: Window) -> np.ndarray:
    return np.flatnonzero(w.context_mask)


def question_ids(w: Window) -> list[int]:
    return [t for t, s in zip(w.encoding.ids, w.encoding.sequence_ids, strict=True) if s == 0]


def test_long_context_overflows_into_windows_that_overlap_by_doc_stride(tok: WindowTokenizer) -> None:
    ws = windows(tok, "Which letter?", CONTEXT, max_seq_len=48, doc_stride=16)
    assert len(ws) > 3
    assert all(len(w.encoding.ids) <= 48 for w in ws)
    for before, after in itertools.pairwise(ws):
        tail = [before.encoding.offsets[i] for i in context_positions(before)[-16:]]
        head = [after.encoding.offsets[i] for i in context_positions(after)[:16]]
        assert tail == head


def test_windows_cover_the_whole_context_in_order(tok: WindowTokenizer) -> None:
    ws = windows(tok, "Which letter?", CONTEXT, max_seq_len=40, doc_stride=8)
    whole = tok.windows(0, "Which letter?", CONTEXT, max_seq_len=512, doc_stride=8, max_question_len=64)
    assert len(whole) == 1
    expected = [whole[0].encoding.offsets[i] for i in context_positions(whole[0])]
    seen: list[tuple[int, int]] = []
    for w in ws:
        for i in context_positions(w):
            if w.encoding.offsets[i] not in seen:
                seen.append(w.encoding.offsets[i])
    assert seen == expected


def test_every_window_repeats_the_whole_question(tok: WindowTokenizer) -> None:
    ws = windows(tok, "Which letter comes first?", CONTEXT)
    questions = {tuple(question_ids(w)) for w in ws}
    assert len(questions) == 1
    assert len(next(iter(questions))) > 0


def test_a_question_longer_than_max_question_len_keeps_its_first_tokens(tok: WindowTokenizer) -> None:
    question = " ".join(["what is the capital city of the river"] * 4)
    full = windows(tok, question, "Paris.", max_seq_len=128, max_question_len=200)[0]
    cut = windows(tok, question, "Paris.", max_seq_len=128, max_question_len=5)[0]
    full_q, cut_q = question_ids(full), question_ids(cut)
    assert len(full_q) > 5
    assert cut_q == full_q[:5]


def test_question_truncation_never_splits_a_multi_byte_character(tok: WindowTokenizer) -> None:
    # Byte-level BPE writes an emoji as several byte tokens; a cut among them used to keep the whole emoji,
    # one token more than the room computed for it, and tokenizers then panicked on the stride.
    question = "what 🦓🦒🦔🦕 is this"  # emoji the fixture corpus lacks: several byte tokens each
    for max_question_len in range(1, 8):
        ws = windows(
            tok,
            question,
            CONTEXT,
            max_seq_len=24,
            doc_stride=24 - max_question_len - 5,
            max_question_len=max_question_len,
        )
        q_len = sum(1 for s in ws[0].encoding.sequence_ids if s == 0)
        assert q_len <= max_question_len
        assert all(len(w.encoding.ids) <= 24 for w in ws)


@settings(max_examples=40, deadline=None)
@given(
    question=st.text(alphabet="abcz éü東😀🦓ꙮ?,.", min_size=1, max_size=40).filter(str.strip),
    max_question_len=st.integers(min_value=1, max_value=12),
    max_seq_len=st.integers(min_value=8, max_value=40),
    doc_stride=st.integers(min_value=0, max_value=30),
)
def test_any_question_either_fits_or_is_rejected_as_invalid_input(
    tok: WindowTokenizer, question: str, max_question_len: int, max_seq_len: int, doc_stride: int
) -> None:
    try:
        ws = windows(
            tok,
            question,
            UNICODE_CONTEXT,
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            max_question_len=max_question_len,
        )
    except InvalidInput:
        return
    assert ws
    assert all(len(w.encoding.ids) <= max_seq_len for w in ws)
    assert all(w.context_mask.any() for w in ws)


@pytest.mark.parametrize("context", [CONTEXT, UNICODE_CONTEXT])
def test_context_offsets_index_the_original_python_string(tok: WindowTokenizer, context: str) -> None:
    for w in windows(tok, "Where?", context, max_seq_len=32, doc_stride=8):
        for i in context_positions(w):
            start, end = w.encoding.offsets[i]
            piece = context[start:end]
            assert 0 <= start <= end <= len(context)
            if start == end:  # byte-level BPE: a lone space token, trimmed to nothing right after the space
                assert context[start - 1].isspace()
            else:
                assert piece.strip() == piece


def test_offsets_of_words_after_emoji_and_cjk_point_at_those_words(tok: WindowTokenizer) -> None:
    w = windows(tok, "Where?", UNICODE_CONTEXT, max_seq_len=128)[0]
    pieces = {UNICODE_CONTEXT[slice(*w.encoding.offsets[i])] for i in context_positions(w)}
    for word in ("Zürich", "Paulo", "crème", "résumé", "😀", "🎉"):
        assert word in pieces, word


def test_context_mask_marks_exactly_the_context_tokens(tok: WindowTokenizer) -> None:
    w = windows(tok, "Where?", "Paris is a city.")[0]
    assert w.context_mask.tolist() == [s == 1 for s in w.encoding.sequence_ids]
    assert not w.context_mask[0]
    assert not w.context_mask[-1]


def test_model_inputs_right_pad_to_the_longest_window(tok: WindowTokenizer) -> None:
    short = windows(tok, "Where?", "Paris.")
    long = windows(tok, "Where is it?", "Paris is a city on a river.")
    batch = tok.model_inputs(short + long)
    n_short, n_long = len(short[0].encoding.ids), len(long[0].encoding.ids)
    assert n_short < n_long
    assert {k: v.shape for k, v in batch.items()} == {k: (2, n_long) for k in batch}
    assert all(v.dtype == np.int64 for v in batch.values())
    assert batch["input_ids"][0, :n_short].tolist() == short[0].encoding.ids
    assert (batch["input_ids"][0, n_short:] == tok.pad_token_id).all()
    assert batch["attention_mask"].sum(axis=1).tolist() == [n_short, n_long]
    assert batch["token_type_ids"][1].tolist() == long[0].encoding.type_ids


def test_bert_segment_ids_mark_the_context(tiny_bert_dir: Path) -> None:
    w = WindowTokenizer.from_dir(tiny_bert_dir).windows(
        0, "Where?", "Paris.", max_seq_len=48, doc_stride=16, max_question_len=64
    )[0]
    n_first = w.encoding.sequence_ids.index(1)  # [CLS] question [SEP]
    assert w.encoding.type_ids == [0] * n_first + [1] * (len(w.encoding.ids) - n_first)


def test_defaults_follow_the_pipeline(tok: WindowTokenizer) -> None:
    assert tok.model_max_length == 512
    assert tok.resolve(None, None) == (384, 128)
    assert tok.resolve(100, None) == (100, 50)
    assert tok.resolve(100, 7) == (100, 7)


def test_max_seq_len_above_the_model_maximum_is_invalid(tok: WindowTokenizer) -> None:
    with pytest.raises(InvalidInput, match="exceeds"):
        tok.resolve(513, None)


@pytest.mark.parametrize(
    ("question", "context"), [("", "Paris."), ("  \n", "Paris."), ("Where?", ""), ("Where?", " \t")]
)
def test_empty_or_blank_question_or_context_is_invalid(
    tok: WindowTokenizer, question: str, context: str
) -> None:
    with pytest.raises(InvalidInput, match="cannot be empty"):
        windows(tok, question, context)


def test_doc_stride_must_leave_room_for_new_context_tokens(tok: WindowTokenizer) -> None:
    question = "Where is it?"
    w = windows(tok, question, "Paris.")[0]
    not_context = sum(1 for s in w.encoding.sequence_ids if s != 1)  # question and special tokens
    room = 48 - not_context
    assert len(windows(tok, question, CONTEXT, max_seq_len=48, doc_stride=room - 1)) > 1
    with pytest.raises(InvalidInput, match="doc_stride"):
        windows(tok, question, CONTEXT, max_seq_len=48, doc_stride=room)


def test_max_seq_len_too_small_for_the_question_is_invalid(tok: WindowTokenizer) -> None:
    with pytest.raises(InvalidInput, match="no room"):
        windows(tok, "what is the capital city of the river", CONTEXT, max_seq_len=8, doc_stride=0)


def copy_with(src: Path, dst: Path, file: str, **changes: object) -> Path:
    shutil.copytree(src, dst)
    path = dst / file
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")
    return dst


def test_unknown_model_max_length_falls_back_to_usable_positions(
    tiny_bert_dir: Path, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    # RoBERTa's 514 position embeddings hold 512 tokens: position ids start after pad_token_id (1).
    bert = copy_with(tiny_bert_dir, tmp_path / "bert", "tokenizer_config.json", model_max_length=int(1e30))
    roberta = copy_with(
        tiny_roberta_dir, tmp_path / "roberta", "tokenizer_config.json", model_max_length=int(1e30)
    )
    assert WindowTokenizer.from_dir(bert).model_max_length == 512
    assert WindowTokenizer.from_dir(roberta).model_max_length == 512


def test_left_padded_tokenizers_are_rejected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    left = copy_with(tiny_bert_dir, tmp_path / "left", "tokenizer_config.json", padding_side="left")
    with pytest.raises(ValueError, match="right-padded"):
        WindowTokenizer.from_dir(left)


def test_a_model_without_tokenizer_json_is_rejected(tiny_bert_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_bert_dir, tmp_path / "slow")
    (tmp_path / "slow" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        WindowTokenizer.from_dir(tmp_path / "slow")
