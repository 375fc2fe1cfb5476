"""ONNX export and the ONNX Runtime backend: same logits and answers as torch, both int8 recipes still exact on
the planted model, dynamic shapes, and a serving path that never imports torch or transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from handler import variants
from handler.backends import load_backend
from handler.backends.onnx_backend import OUTPUT_NAMES, OnnxBackend, session_options
from handler.backends.torch_backend import TorchBackend
from handler.engine import QAEngine, QAParams
from qa_tools import calibration, quantize
from qa_tools.export import build_fp32
from qa_tools.quantize import build_int8, build_int8_fast, build_int8_qgemm
from qa_tools.tiny_models import (
    END_WORD,
    KINDS,
    START_WORD,
    ModelKind,
    PlantedModel,
    build_planted_model,
    build_tiny_model,
)
from tests.fixtures import ROOT as REPO

ONNX_VARIANTS = ("onnx-fp32", "onnx-int8", "onnx-int8-fast", "onnx-int8-qgemm")
ONNX_FILES = {name: variants.get(name).weight_file for name in ONNX_VARIANTS}


def _qgemm(fp32: Path, path: Path) -> None:
    """The QGEMM recipe calibrated as publish does, on the shipped calibration text (the export's tokenizer)."""
    quantize.qgemm(fp32, path, calibration.feeds(fp32.parent))


RECIPES = {"onnx-int8": quantize.faithful, "onnx-int8-fast": quantize.dynamic, "onnx-int8-qgemm": _qgemm}
# fp32 ONNX vs torch: the same float32 arithmetic with different kernels and fusion order.
LOGITS_ATOL = 1e-4
LOGITS_RTOL = 1e-4

QUESTION = "Which animal is it?"
PLANTED_ANSWER = f"{START_WORD} of the old {END_WORD}"
PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("Who built the tower?", "Who built the tower near the station? Engineers built it in 1889."),
    (
        "Which river is the longest?",
        " ".join(["The river flows through the city under an old stone bridge."] * 12),  # several windows
    ),
    ("Where is the café?", "The café on the corner serves crème brûlée; 東京 is far 🚀."),
]


def _exported(kind: ModelKind, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with the three ONNX files written into its own directory."""
    model_dir = build_tiny_model(tmp_path_factory.mktemp(f"onnx-{kind}"), kind)
    build_int8(model_dir, model_dir)  # and the fp32 file it is quantized from
    build_int8_fast(model_dir, model_dir)
    build_int8_qgemm(model_dir, model_dir)
    return model_dir


@pytest.fixture(scope="module")
def exported_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _exported("bert", tmp_path_factory)


@pytest.fixture(scope="module")
def exported_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _exported("roberta", tmp_path_factory)


@pytest.fixture(scope="module", params=KINDS)
def exported(request: pytest.FixtureRequest) -> Path:
    """Both kinds in turn: BERT-style (segment ids) and RoBERTa-style (no segment ids, offset positions)."""
    return request.getfixturevalue(f"exported_{request.param}")


@dataclass(frozen=True)
class PlantedExport:
    model: PlantedModel
    written: list[Path]
    onnx_files_after_export: list[str]


@pytest.fixture(scope="module", params=KINDS)
def planted_fp32(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PlantedExport:
    """A planted model exported without quantization (the int8 file is made from it where a test needs it)."""
    model = build_planted_model(tmp_path_factory.mktemp(f"planted-onnx-{request.param}"), request.param)
    written = [build_fp32(model.path, model.path)]
    return PlantedExport(model, written, sorted(p.name for p in model.path.glob("*.onnx*")))


@pytest.fixture(scope="module")
def torch_backend(exported: Path) -> TorchBackend:
    return TorchBackend(exported, threads=1)


def random_batch(rng: np.random.Generator, batch: int, tokens: int, vocab: int) -> dict[str, np.ndarray]:
    """Random ids with a different amount of right padding per row (row 0 unpadded) and two segments."""
    ids = rng.integers(5, vocab, size=(batch, tokens), dtype=np.int64)
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)
    for row in range(batch):
        length = tokens - (row * tokens) // (batch + 1)
        mask[row, length:] = 0
        ids[row, length:] = 0
        types[row, length // 2 : length] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


# --- the exported graph -----------------------------------------------------------------------------------


def test_export_writes_fp32_and_int8_with_the_torch_backends_inputs(
    exported: Path, torch_backend: TorchBackend
) -> None:
    for file in ONNX_FILES.values():
        assert (exported / file).stat().st_mode & 0o777 == 0o644  # readable by the image's runtime user
        graph = onnx.load(str(exported / file)).graph
        assert [i.name for i in graph.input] == list(torch_backend.input_names)
        assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
        for value in [*graph.input, *graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert len(dims) == 2
            assert all(d.dim_param and not d.dim_value for d in dims), f"{value.name} has a fixed axis"
    # Segment ids are an input of BERT-style models only.
    uses_segments = json.loads((exported / "config.json").read_text(encoding="utf-8"))["model_type"] == "bert"
    assert ("token_type_ids" in torch_backend.input_names) == uses_segments
    # Quantization actually happened: integer matmuls replace float ones and the files shrink.
    faithful_ops = {n.op_type for n in onnx.load(str(exported / ONNX_FILES["onnx-int8"])).graph.node}
    fast_ops = {n.op_type for n in onnx.load(str(exported / ONNX_FILES["onnx-int8-fast"])).graph.node}
    assert (
        "MatMulNBits" in faithful_ops and "MatMul" not in faithful_ops
    )  # Q/K/V included: no packed Attention
    assert {"MultiHeadAttention", "GatherBlockQuantized"} <= faithful_ops and "Attention" not in faithful_ops
    assert "MatMulInteger" in fast_ops
    qgemm = onnx.load(str(exported / ONNX_FILES["onnx-int8-qgemm"])).graph
    qgemm_ops = {n.op_type for n in qgemm.node}
    assert {"MatMulIntegerToFloat", "GatherBlockQuantized"} <= qgemm_ops  # every weight MatMul on QGEMM
    assert qgemm_ops.isdisjoint({"MatMul", "MatMulNBits"})
    # The feed-forward down-projections read their GELU's output on the unsigned grid (zero point 0).
    unsigned = [n for n in qgemm.node if n.op_type == "QuantizeLinear" and n.input[2] == "pt_u_zero"]
    assert len(unsigned) == sum(n.op_type == "BiasGelu" for n in qgemm.node) > 0
    fp32_size = (exported / ONNX_FILES["onnx-fp32"]).stat().st_size
    assert all((exported / ONNX_FILES[v]).stat().st_size < fp32_size for v in RECIPES)


def test_reexporting_the_same_model_gives_identical_bytes(exported_roberta: Path, tmp_path: Path) -> None:
    """The publish CLI skips uploads by content hash: an unchanged model must not look changed."""
    again = [build_fp32(exported_roberta, tmp_path), build_int8(exported_roberta, tmp_path)]
    again += [build_int8_fast(exported_roberta, tmp_path), build_int8_qgemm(exported_roberta, tmp_path)]
    assert [p.name for p in again] == list(ONNX_FILES.values())
    for path in again:
        assert path.read_bytes() == (exported_roberta / path.name).read_bytes(), path.name


def test_published_graphs_name_no_path_of_the_machine_that_built_them(exported_roberta: Path) -> None:
    """The exporter's stack traces are dropped: they named this checkout and its venv (a user's home directory
    shipped to S3, and bytes that differed between two clones of the same commit)."""
    for name in ONNX_FILES.values():
        data = (exported_roberta / name).read_bytes()
        assert str(REPO).encode() not in data and sys.prefix.encode() not in data, name
        assert b"pkg.torch.onnx.stack_trace" not in data, name


def test_export_without_quantize_writes_only_fp32(planted_fp32: PlantedExport) -> None:
    assert planted_fp32.written == [planted_fp32.model.path / ONNX_FILES["onnx-fp32"]]
    assert planted_fp32.onnx_files_after_export == [ONNX_FILES["onnx-fp32"]]


def test_failed_export_leaves_no_partial_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")  # no weights
    out = tmp_path / "out"
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever transformers raises, nothing may be left
        build_int8(broken, out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("variant", list(RECIPES))
def test_quantization_is_deterministic_and_leaves_nothing_behind(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """The quantizers write scratch files into the working directory: ours runs them in a temporary one."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    RECIPES[variant](exported / ONNX_FILES["onnx-fp32"], first)
    RECIPES[variant](exported / ONNX_FILES["onnx-fp32"], second)
    assert first.read_bytes() == second.read_bytes()
    assert list(work.iterdir()) == [] and Path.cwd() == work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx", "cwd"]


# --- parity with torch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("tokens", [2, 17, 64, 200])
def test_fp32_logits_match_torch_for_any_batch_and_length(
    exported: Path, torch_backend: TorchBackend, batch: int, tokens: int
) -> None:
    onnx_backend = OnnxBackend(exported / ONNX_FILES["onnx-fp32"], name="onnx-fp32", threads=1)
    vocab = torch_backend.model.config.vocab_size
    inputs = random_batch(np.random.default_rng(batch * 1000 + tokens), batch, tokens, vocab)

    start, end = onnx_backend.logits(inputs)
    ref_start, ref_end = torch_backend.logits(inputs)

    assert start.shape == end.shape == (batch, tokens)
    assert start.dtype == end.dtype == np.float32
    np.testing.assert_allclose(start, ref_start, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    np.testing.assert_allclose(end, ref_end, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@pytest.mark.parametrize(
    "params",
    [
        QAParams(),
        QAParams(top_k=3),
        QAParams(max_seq_len=32, doc_stride=8, top_k=2, handle_impossible_answer=True),
    ],
    ids=["defaults", "top3", "short-windows"],
)
def test_engine_answers_with_onnx_fp32_equal_torch(exported: Path, params: QAParams) -> None:
    torch_engine = QAEngine.load(exported, "torch", max_batch_windows=3)
    onnx_engine = QAEngine.load(exported, "onnx-fp32", max_batch_windows=3)
    assert onnx_engine.encode(PAIRS, params).num_windows > 3  # several backend calls, a ragged last batch

    expected = torch_engine.answer(PAIRS, params)
    got = onnx_engine.answer(PAIRS, params)

    for ours, ref in zip(got, expected, strict=True):
        assert [(a.answer, a.start, a.end) for a in ours] == [(a.answer, a.start, a.end) for a in ref]
        assert [a.score for a in ours] == pytest.approx([a.score for a in ref], rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("variant", list(RECIPES))
def test_int8_model_loads_and_answers(exported: Path, variant: str) -> None:
    engine = QAEngine.load(exported, variant)
    assert engine.backend.name == variant
    answers = engine.answer(PAIRS, QAParams(top_k=2))
    assert len(answers) == len(PAIRS)
    for pair_answers, (_, context) in zip(answers, PAIRS, strict=True):
        assert 1 <= len(pair_answers) <= 2
        for a in pair_answers:
            assert context[a.start : a.end] == a.answer
            assert 0.0 <= a.score <= 1.0


@pytest.mark.parametrize("variant", ["onnx-fp32", *RECIPES])
def test_planted_span_survives_export_and_int8_quantization(
    planted_fp32: PlantedExport, variant: str
) -> None:
    model_dir = planted_fp32.model.path
    if variant in RECIPES:
        RECIPES[variant](model_dir / ONNX_FILES["onnx-fp32"], model_dir / ONNX_FILES[variant])
    engine = QAEngine.load(model_dir, variant)
    prefix = "alpha beta gamma river"
    context = f"{prefix} {PLANTED_ANSWER} delta city omega."

    [[best]] = engine.answer([(QUESTION, context)])
    long_context = f"{context} {'kappa sigma theta ' * 30}"
    long_request = engine.encode([(QUESTION, long_context)], QAParams(max_seq_len=48))
    [[long_best]] = engine.predict(long_request)
    [[no_answer]] = engine.answer([(QUESTION, "alpha beta gamma.")], QAParams(handle_impossible_answer=True))

    start = len(prefix) + 1
    assert engine.backend.name == variant
    assert (best.answer, best.start, best.end) == (PLANTED_ANSWER, start, start + len(PLANTED_ANSWER))
    assert best.score > 0.9
    assert long_request.num_windows > 2
    assert (long_best.answer, long_best.start) == (PLANTED_ANSWER, start)
    assert no_answer.answer == ""


# --- the backend itself -----------------------------------------------------------------------------------


def test_load_backend_picks_the_file_for_each_variant(exported: Path) -> None:
    for variant, file in ONNX_FILES.items():
        backend = load_backend(variant, exported)
        info = backend.describe()
        assert backend.name == info["backend"] == variant
        assert info["file"] == file
        assert info["onnxruntime"] == ort.__version__
        assert int(info["threads"]) >= 1


def test_backend_feeds_only_the_inputs_the_graph_declares(
    exported: Path, torch_backend: TorchBackend
) -> None:
    backend = OnnxBackend(exported / ONNX_FILES["onnx-fp32"], name="onnx-fp32", threads=1)
    assert backend.input_names == torch_backend.input_names
    inputs = random_batch(np.random.default_rng(7), 2, 9, torch_backend.model.config.vocab_size)
    inputs["unused_extra"] = np.zeros((2, 9), dtype=np.int64)  # ORT would reject an undeclared input
    start, end = backend.logits(inputs)
    assert start.shape == end.shape == (2, 9)


def test_construction_runs_one_tiny_warm_up_inference(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, ...]] = []
    original = OnnxBackend.logits

    def counting(self: OnnxBackend, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        calls.append(inputs["input_ids"].shape)
        return original(self, inputs)

    monkeypatch.setattr(OnnxBackend, "logits", counting)
    OnnxBackend(exported / ONNX_FILES["onnx-int8"], name="onnx-int8", threads=1)
    assert len(calls) == 1
    assert calls[0][0] == 1 and calls[0][1] <= 32


def test_session_options_suit_a_lambda_sandbox() -> None:
    opts = session_options(3)
    assert opts.intra_op_num_threads == 3
    assert opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.optimized_model_filepath == ""  # nothing written to the read-only file system


# --- the serving path stays torch-free --------------------------------------------------------------------

_PROBE = """
import json, sys
from pathlib import Path
from handler.engine import QAEngine
engine = QAEngine.load(Path(sys.argv[1]), "onnx-int8")
[[best]] = engine.answer([("What is the capital of France?", "Paris is the capital of France.")])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(json.dumps({"heavy": heavy, "backend": engine.backend.name, "answer": best.answer}))
"""


def test_onnx_int8_path_imports_neither_torch_nor_transformers(exported: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(exported)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["backend"] == "onnx-int8"
    assert report["answer"]
    assert report["answer"] in "Paris is the capital of France."


# --- loading from memory (the model store's memory mode) --------------------------------------------------


def test_backend_from_bytes_gives_the_logits_of_the_file(exported: Path) -> None:
    from handler.model_files import DirectoryFiles, MemoryFiles

    vocab = json.loads((exported / "config.json").read_text())["vocab_size"]
    disk = DirectoryFiles(exported)
    memory = MemoryFiles({key: disk.read_bytes(key) for key in disk.file_keys()}, "in-memory")
    inputs = random_batch(np.random.default_rng(3), 3, 11, vocab)
    for name in ONNX_FILES:
        from_disk, from_memory = load_backend(name, disk), load_backend(name, memory)
        assert from_memory.describe()["file"] == from_disk.describe()["file"] == ONNX_FILES[name]
        for a, b in zip(from_disk.logits(inputs), from_memory.logits(inputs), strict=True):
            np.testing.assert_array_equal(a, b)


def test_session_from_bytes_keeps_no_reference_to_them(exported: Path) -> None:
    """ONNX Runtime's wrapper would hold the model bytes for the session's life: 2x the weights for ever."""
    import gc

    data = (exported / ONNX_FILES["onnx-int8"]).read_bytes()
    backend = OnnxBackend(data, name="onnx-int8", threads=1)
    holders = [r for r in gc.get_referrers(data) if r is not sys._getframe()]
    assert holders == []
    ids = np.full((1, 5), 5, dtype=np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    assert backend.logits(inputs)[0].shape == (1, 5)


def test_external_data_is_read_from_memory_too(exported: Path, tmp_path: Path) -> None:
    """A graph saved with its weights in a separate file (``model.onnx_data``) loads from bytes alone."""
    from handler.model_files import MemoryFiles

    graph = onnx.load(str(exported / ONNX_FILES["onnx-fp32"]))
    onnx.save_model(graph, str(tmp_path / "model.onnx"), save_as_external_data=True,
                    location="model.onnx_data", size_threshold=1024)  # fmt: skip
    files = {k: (tmp_path / k).read_bytes() for k in ("model.onnx", "model.onnx_data")}
    # The graph alone cannot load: its weights are in the other file.
    with pytest.raises(Exception, match="External data"):
        load_backend("onnx-fp32", MemoryFiles({"model.onnx": files["model.onnx"]}, "graph only"))
    memory = MemoryFiles(files, "graph and data")
    vocab = json.loads((exported / "config.json").read_text())["vocab_size"]
    inputs = random_batch(np.random.default_rng(5), 2, 7, vocab)
    reference = OnnxBackend(exported / ONNX_FILES["onnx-fp32"], name="onnx-fp32", threads=1).logits(inputs)
    loaded = load_backend("onnx-fp32", memory).logits(inputs)
    for a, b in zip(reference, loaded, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
