"""One loading path for a model on disk and a model held in memory: same files in, same engine out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handler.backends import load_backend
from handler.backends.torch_backend import model_from_memory
from handler.engine import QAEngine
from handler.engine.tokenization import WindowTokenizer
from handler.model_files import DirectoryFiles, MemoryFiles, as_model_files
from handler.variants import get
from qa_tools.tiny_models import PlantedModel

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("Where is the café?", " ".join(["The café on the corner serves crème brûlée; 東京 is far 🚀."] * 30)),
]


def in_memory(model_dir: Path) -> MemoryFiles:
    disk = DirectoryFiles(model_dir)
    return MemoryFiles({key: disk.read_bytes(key) for key in disk.file_keys()}, model_dir.name)


def test_directory_and_memory_files_read_alike(tiny_model_dir: Path) -> None:
    disk, memory = DirectoryFiles(tiny_model_dir), in_memory(tiny_model_dir)
    assert disk.file_keys() == memory.file_keys()
    assert memory.read_text("config.json") == disk.read_text("config.json")
    assert memory.path("config.json") is None and disk.path("config.json") == tiny_model_dir / "config.json"
    assert memory.resident_bytes() == sum(p.stat().st_size for p in tiny_model_dir.iterdir()) > 0
    with pytest.raises(FileNotFoundError, match=r"absent\.bin"):
        memory.read_bytes("absent.bin")
    memory.release()
    assert memory.resident_bytes() == 0 and not memory.exists("config.json")
    assert as_model_files(tiny_model_dir).path("x") == tiny_model_dir / "x"


def test_torch_from_memory_gives_the_logits_of_the_directory(tiny_model_dir: Path) -> None:
    disk, memory = DirectoryFiles(tiny_model_dir), in_memory(tiny_model_dir)
    tokenizer = WindowTokenizer.from_files(memory)
    engine = QAEngine(tokenizer, load_backend("torch", disk))
    inputs = tokenizer.model_inputs(engine.encode(PAIRS).windows)
    from_disk, from_memory = load_backend("torch", disk), load_backend("torch", memory)
    assert type(from_memory.model) is type(from_disk.model)
    for a, b in zip(from_disk.logits(inputs), from_memory.logits(inputs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_engine_from_memory_answers_as_from_disk(planted_model: PlantedModel) -> None:
    context = f"Far away, the {planted_model.start_word} of the old {planted_model.end_word} lives here."
    pairs = [("Which animal is it?", context), *PAIRS]
    from_disk = QAEngine.load(planted_model.path, "torch").answer(pairs)
    from_memory = QAEngine.load(in_memory(planted_model.path), "torch").answer(pairs)
    assert from_memory == from_disk
    assert from_memory[0][0].answer == f"{planted_model.start_word} of the old {planted_model.end_word}"


def test_sharded_weights_load_from_memory(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Every shard a save_pretrained split wrote is read; buffers the state dict lacks are still real."""
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_bert_dir)
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 1
    (tmp_path / "tokenizer.json").write_bytes((tiny_bert_dir / "tokenizer.json").read_bytes())
    rebuilt = model_from_memory(in_memory(tmp_path), get("torch"))
    for name, tensor in model.state_dict().items():
        assert np.array_equal(rebuilt.state_dict()[name].numpy(), tensor.numpy()), name
    assert all(b.device.type == "cpu" for b in rebuilt.buffers())


def test_memory_files_without_weights_name_what_is_missing(tiny_bert_dir: Path) -> None:
    memory = MemoryFiles({"config.json": (tiny_bert_dir / "config.json").read_bytes()}, "half-a-model")
    with pytest.raises(FileNotFoundError, match="half-a-model"):
        model_from_memory(memory, get("torch"))
