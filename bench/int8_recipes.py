"""Int8 recipe exploration: candidate recipes built from the fp32 export, scored against onnx-fp32 and timed.

    python bench/int8_recipes.py [--model DIR] [--squad FILE] [--limit 1000] [--repeats 20] [--only NAME ...]

Build-time tool (``qa_tools`` recipes; nothing here ships in the image). For each candidate (``CANDIDATES``):

* Answers: the first ``--limit`` answerable questions of ``--squad`` (file order) through the serving engine
  (``QAEngine``, the handler's decoding), batches of 8; same span = top-1 character offsets equal to
  onnx-fp32's; EM / F1 (``qa_tools.squad``) and their difference to onnx-fp32's.
* Speed: ms per 384-token window, batch 1, ONE intra-op thread, median of ``--repeats`` after warm-ups, all
  candidates interleaved round-robin in the same run (``bench/fidelity.py``'s timer); ratio = fp32 ms / ms.
* Operators: the GEMM-like operators ONNX Runtime runs, read from the session's optimised graph (so the
  fusions ORT makes at load, e.g. MatMulInteger -> DynamicQuantizeMatMul, are what is named).

Calibration for the SmoothQuant-style and keep candidates (channel maxima, sensitivity ranking): ``--calibration`` windows of the
answerable questions AFTER the scored ones (never the scored questions themselves).

Markdown on stdout (header: CPU model, int8 flags, load average); progress on stderr.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import fidelity as table  # noqa: E402 - bench/fidelity.py: builder, answering and timing helpers
from _fidelity import load_items  # noqa: E402
from _machine import cpu_line, load_average, machine  # noqa: E402

import qa_tools.calibration  # noqa: E402
import qa_tools.export  # noqa: E402
import qa_tools.per_token  # noqa: E402
import qa_tools.quantize  # noqa: E402
from handler.backends import available_cpus  # noqa: E402
from handler.backends.onnx_backend import session_options  # noqa: E402

REFERENCE = "onnx-fp32"
GEMM_OPS = (
    "MatMul",
    "FusedMatMul",
    "Gemm",
    "MatMulNBits",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "QLinearMatMul",
    "QGemm",
    "Attention",
    "MultiHeadAttention",
    "Gather",
    "GatherBlockQuantized",
)
Candidate = table.Candidate
_PT = qa_tools.per_token.per_token
RANKS = {"damage": "the damage each does alone", "local": "own output error"}


def kept(
    feeds: Sequence[dict[str, np.ndarray]],
    share: float,
    keep_as: str,
    *,
    rank: str = "local",
    gptq: bool = False,
    alpha: float = 0.5,
    shift: bool = False,
    publish_calibration: bool = False,
) -> Candidate:
    """A ``per_token`` row with migration ``alpha``, calibrated on ``feeds``: the ``share`` of MatMuls worst by
    ``rank`` kept ``keep_as``; ``publish_calibration``: ``feeds`` is ``qa_tools/calibration`` (name ``-shipped``)."""
    name = f"smooth{alpha}{'-gptq' * gptq}{'-shift' * shift}-{rank}{share:.0%}-{keep_as}{'-shipped' * publish_calibration}"
    source = "qa_tools/calibration, as publish would" if publish_calibration else "calibration windows"
    return Candidate(
        name,
        "onnx-int8",
        functools.partial(
            _PT,
            calibration=feeds,
            smooth_alpha=alpha,
            keep_share=share,
            rank=rank,
            keep_as=keep_as,
            gptq=gptq,
            shift=shift,
        ),
        f"as smooth{alpha}{', GPTQ-rounded weights,' * gptq}{' GELU outputs on the unsigned grid,' * shift} the "
        f"{share:.0%} of MatMuls worst by {RANKS[rank]} ({source}) kept {keep_as}",
    )


def candidates(model_dir: Path, calibration: Sequence[dict[str, np.ndarray]]) -> list[Candidate]:
    """The rows; ``calibration``: windows for the smoothing rows (empty: no smoothing rows)."""
    shipped = qa_tools.calibration.feeds(model_dir)
    rows = [
        Candidate(REFERENCE, "onnx-fp32", None, "fp32 export (reference)"),
        Candidate("onnx-int8", "onnx-int8", qa_tools.quantize.faithful, "faithful: MatMulNBits 8-bit, block 32 (default without int8 dot products)"),
        Candidate(
            "onnx-int8-qgemm",
            "onnx-int8-qgemm",
            lambda fp32, path: qa_tools.quantize.qgemm(fp32, path, shipped),
            f"as published (default with int8 dot products): per-token, smoothing a={qa_tools.quantize.SMOOTH_ALPHA}, "
            "the GELU outputs on the unsigned grid; qa_tools/calibration",
        ),
        Candidate(
            "qgemm-third-in-blocks",
            "onnx-int8",
            functools.partial(_PT, calibration=shipped, smooth_alpha=0.5, keep_share=1 / 3, keep_as="blocks"),
            "onnx-int8-qgemm as published until 2026-12-07: per-token, smoothing a=0.5, the worst 33% by output error "
            "in MatMulNBits; qa_tools/calibration",
        ),
        kept(shipped, 1 / 6, "two-pass", gptq=True, publish_calibration=True),
        Candidate("onnx-int8-fast", "onnx-int8", qa_tools.quantize.dynamic, "quantize_dynamic per-channel (per-tensor activations)"),
        Candidate("per-token-w8", "onnx-int8", _PT, "per-token activations, int8 per-channel weights, fusions"),
        Candidate("per-token-w7", "onnx-int8", functools.partial(_PT, weight_bits=7), "per-token, 7-bit weights (no AVX2 int16 saturation)"),
        Candidate("per-token-w8-unfused", "onnx-int8", functools.partial(_PT, fusions=False), "per-token w8 on the plain export (no onnxscript fusions)"),
    ]  # fmt: skip
    for alpha in (0.5, 0.75) if calibration else ():
        rows.append(
            Candidate(
                f"per-token-w8-smooth{alpha}",
                "onnx-int8",
                functools.partial(_PT, calibration=calibration, smooth_alpha=alpha),
                f"per-token w8 + SmoothQuant-style migration a={alpha} (explicit Mul per input), fusions",
            )
        )
    for share, rank, keep_as, gptq in (
        (
            (0.22, "damage", "fp32", False),
            (0.22, "local", "fp32", False),
            (0.22, "local", "blocks", False),
            (0.11, "local", "blocks", False),
            (1 / 3, "local", "two-pass", False),
            (0.0, "local", "two-pass", True),
            (1 / 6, "local", "two-pass", True),
            (1 / 3, "local", "two-pass", True),
        )
        if calibration
        else ()
    ):
        rows.append(kept(calibration, share, keep_as, rank=rank, gptq=gptq))
    # GELU outputs on the unsigned grid; with the shipped calibration and nothing kept it is onnx-int8-qgemm.
    if calibration:
        rows.append(kept(calibration, 0.0, "blocks", shift=True))
    for share, keep_as, gptq, alpha in (
        (1 / 3, "blocks", False, 0.5),
        (1 / 6, "blocks", False, 0.5),
        (1 / 9, "blocks", False, 0.5),
        (0.0, "blocks", False, 0.75),
        (0.0, "blocks", False, 0.35),
        (1 / 9, "two-pass", False, 0.5),
        (0.0, "two-pass", True, 0.5),
        (1 / 6, "two-pass", True, 0.5),
        (1 / 6, "blocks", True, 0.5),
    ):
        rows.append(
            kept(shipped, share, keep_as, gptq=gptq, alpha=alpha, shift=True, publish_calibration=True)
        )
    return rows


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def calibration_feeds(model_dir: Path, squad: Path, skip: int, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` windows, cut as the engine cuts them, of the answerable questions after the first ``skip``."""
    items = load_items(squad, skip + count)[skip:]
    return qa_tools.calibration.feeds(model_dir, [(item.question, item.context) for item in items])


def ort_operators(path: Path) -> str:
    """GEMM-like operator counts of the graph ONNX Runtime runs (its optimised copy, written to a temp dir)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as tmp:
        opts = session_options(1)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        model = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    counts = collections.Counter(n.op_type for n in model.graph.node if n.op_type in GEMM_OPS)
    return ", ".join(f"{op} {k}" for op, k in sorted(counts.items()))


def _source_key() -> str:
    h = hashlib.sha256()
    for module in (qa_tools.per_token, qa_tools.quantize, qa_tools.export, qa_tools.calibration):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:8]


def render(results: dict[str, Any], rows: Sequence[Candidate]) -> str:
    r0 = results["rows"][REFERENCE]
    lines = [
        f"CPU: {results['machine']['cpu_line']}; onnxruntime {results['machine']['versions']['onnxruntime']}.",
        f"Date: {results['date']}. Command: `{results['command']}`. Load average (1/5/15): start "
        f"{results['load']['start']}, timing {results['load']['timing']}, end {results['load']['end']}.",
        f"Questions: the first {results['questions']} answerable of {results['squad']}; model {results['model']}; "
        f"answers through QAEngine, batches of 8, {results['threads']} threads.",
        f"ms/window: batch 1, {table.WINDOW_TOKENS} tokens, 1 intra-op thread, median of {results['repeats']} after "
        f"{table.WARM_UPS} warm-ups, candidates interleaved; x fp32 = fp32 ms / candidate ms (same run).",
        "",
        "| recipe | what | same span as fp32 | EM (Δ) | F1 (Δ) | ms/window | x fp32 | MB | ORT operators (optimised graph) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in rows:
        r = results["rows"][c.name]
        lines.append(
            f"| {c.name} | {c.description} | {r['same']:.1f}% | {r['em']:.1f} ({r['em'] - r0['em']:+.1f}) "
            f"| {r['f1']:.1f} ({r['f1'] - r0['f1']:+.1f}) | {r['ms']:.1f} | {r0['ms'] / r['ms']:.2f}x "
            f"| {r['mb']:.1f} | {r['ops']} |"
        )
    lines += ["", f"Whole run: {results['seconds'] / 60:.1f} min."]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=table.MINILM)
    parser.add_argument("--squad", type=Path, default=table.SQUAD)
    parser.add_argument("--limit", type=int, default=1000, help="answerable questions scored, file order")
    parser.add_argument("--repeats", type=int, default=20, help="timed windows per candidate (median)")
    parser.add_argument(
        "--calibration",
        type=int,
        default=64,
        help="calibration windows for the smoothing and keep rows (0: no such rows)",
    )
    parser.add_argument("--only", nargs="*", help="candidate names to run (onnx-fp32 is always run)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "qa-int8-recipes")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    model_dir: Path = args.model.resolve()
    if not (model_dir / "config.json").is_file() or not args.squad.is_file():
        print(f"need a trained QA model ({args.model}) and a SQuAD file ({args.squad})", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/int8_recipes.py " + " ".join(sys.argv[1:]),
        "load": {"start": load_average()},
        "model": model_dir.name,
        "squad": args.squad.name,
        "repeats": args.repeats,
        "threads": available_cpus(),
    }
    log(cpu_line())
    root = args.workdir / f"graphs-{_source_key()}-cal{args.calibration}"
    fp32 = qa_tools.export.build_fp32(model_dir, args.workdir / f"fp32-{model_dir.name}")
    feeds = calibration_feeds(model_dir, args.squad, args.limit, args.calibration) if args.calibration else []
    rows = [
        c for c in candidates(model_dir, feeds) if not args.only or c.name in args.only or c.name == REFERENCE
    ]
    export = qa_tools.export.build_fp32
    qa_tools.export.build_fp32 = lambda _m, _o: fp32  # type: ignore[assignment] - one export for every row
    try:
        dirs = table.build_all(model_dir, root, rows)
    finally:
        qa_tools.export.build_fp32 = export  # type: ignore[assignment]
    items = load_items(args.squad, args.limit)
    results["questions"] = len(items)
    answers = {}
    for c in rows:
        started = time.perf_counter()
        answers[c.name] = table.answer_all(dirs[c.name], c.variant, items)
        log(f"answered {len(items)} with {c.name} in {time.perf_counter() - started:.0f} s")
    scored = {c.name: table.scores(answers[c.name], answers[REFERENCE], items) for c in rows}
    graphs = {c.name: table.graph(dirs[c.name], c) for c in rows}
    for c in rows:
        scored[c.name].update(ops=ort_operators(graphs[c.name]), mb=graphs[c.name].stat().st_size / 1e6)
    results["load"]["timing"] = load_average()
    ms = table.time_windows(graphs, table.vocab_size(model_dir), args.repeats, model_dir.name)
    for c in rows:
        scored[c.name]["ms"] = ms[c.name]
    results["rows"] = scored
    results["load"]["end"] = load_average()
    results["seconds"] = time.perf_counter() - began
    print(render(results, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
