"""The int8 recipe table: each candidate's answers against onnx-fp32's, its SQuAD scores, speed and size.

    python bench/fidelity.py [--model DIR] [--squad FILE] [--limit 1000] [--roberta-base] [--workdir DIR]

Candidates (``CANDIDATES``): onnx-fp32 (the reference), onnx-int8 (``qa_tools.quantize.faithful`` with its
defaults: the published default), onnx-int8-fast (``qa_tools.quantize.dynamic``), and the faithful recipe's
alternatives (its keywords): larger blocks, the packed Attention fusion, embedding tables left fp32.

* Answers: the first ``--limit`` answerable questions of ``--squad`` (file order) through the serving engine
  (``QAEngine.load``, each candidate in its own directory under its variant's file name), batches of 8, the
  engine's thread count. Same span: top-1 (start, end) character offsets equal to onnx-fp32's. EM / F1:
  ``qa_tools.squad`` against the gold answers.
* Speed: ms per window -- batch 1, 384 tokens, 1 intra-op thread, median of ``--repeats`` after 3 warm-ups,
  the candidates interleaved round-robin (so a burst of load from elsewhere hits all alike); the ratio to
  onnx-int8-fast in the same run. ``--roberta-base`` also times every recipe on deepset/roberta-base-squad2's
  shape with random weights (``_roberta_base``): speed and size only, its answers mean nothing.
* Near ties: the share of onnx-int8-fast's answers whose top-1 and top-2 scores differ by less than 0.05 / 0.1,
  and the same-span share if exactly those were re-answered by onnx-fp32 (a cascade): why none was chosen.

Markdown on stdout (header: CPU and its int8 flags, threads, load average, questions, model); progress on
stderr. Built graphs are cached in ``--workdir``, keyed by the weights and ``qa_tools/export.py`` +
``qa_tools/quantize.py``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _workload  # noqa: E402
from _fidelity import Item, em_f1, load_items  # noqa: E402
from _machine import cpu_line, load_average, machine  # noqa: E402
from _roberta_base import build_roberta_base  # noqa: E402
from _shared import MINILM, SQUAD  # noqa: E402

import qa_tools.export  # noqa: E402
import qa_tools.quantize  # noqa: E402
from handler import variants  # noqa: E402
from handler.backends import available_cpus  # noqa: E402
from handler.backends.onnx_backend import OnnxBackend  # noqa: E402
from handler.engine import Answer, QAEngine  # noqa: E402
from handler.engine.params import QAParams  # noqa: E402
from handler.store import sha256_file  # noqa: E402

REFERENCE, FAST = "onnx-fp32", "onnx-int8-fast"
WINDOW_TOKENS = 384
WARM_UPS = 3
TIES = (0.05, 0.1)
_MODEL_FILES = (".json", ".txt", ".model")  # config and tokenizer files the engine reads beside the graph

Recipe = Callable[[Path, Path], None]  # (fp32 graph, output path)


@dataclass(frozen=True)
class Candidate:
    name: str  # table row and directory name
    variant: str  # the registry variant the engine loads it as (its weight file name)
    recipe: Recipe | None  # None: the fp32 export itself
    description: str


BLOCK = qa_tools.quantize.BLOCK_SIZE
_FAITHFUL = qa_tools.quantize.faithful
CANDIDATES = (
    Candidate(REFERENCE, "onnx-fp32", None, "fp32 export (reference)"),
    Candidate(
        "onnx-int8",
        "onnx-int8",
        _FAITHFUL,
        f"faithful (default): fusions without packed Attention, MatMulNBits 8-bit + GatherBlockQuantized, block {BLOCK}",
    ),
    Candidate(
        FAST, "onnx-int8-fast", qa_tools.quantize.dynamic, "dynamic: MatMul + Gather, per-channel (opt-in)"
    ),
    *(
        Candidate(
            f"faithful-b{b}", "onnx-int8", functools.partial(_FAITHFUL, block_size=b), f"faithful, block {b}"
        )
        for b in (64, 128)
        if b != BLOCK
    ),
    Candidate(
        "faithful-packed-attention",
        "onnx-int8",
        functools.partial(_FAITHFUL, packed_attention=True),
        "faithful + packed Attention fusion (Q/K/V weights stay fp32)",
    ),
    Candidate(
        "faithful-fp32-emb",
        "onnx-int8",
        functools.partial(_FAITHFUL, embeddings=False),
        "faithful, embedding tables left fp32",
    ),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- building -----------------------------------------------------------------------------------------
def _model_key(model_dir: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".json")):
        h.update(path.name.encode() + sha256_file(path).encode())
    for module in (qa_tools.export, qa_tools.quantize):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()[:12]


def build_all(model_dir: Path, root: Path, candidates: Sequence[Candidate]) -> dict[str, Path]:
    """Each candidate's directory (config and tokenizer linked in, its graph under its variant's file name),
    built once per model and exporter/quantizer source."""
    base = root / f"{model_dir.name}-{_model_key(model_dir)}"
    fp32_dir = base / "fp32-export"
    if not (fp32_dir / variants.get("onnx-fp32").weight_file).is_file():
        log(f"exporting {model_dir.name} to ONNX fp32 ...")
    fp32 = qa_tools.export.build_fp32(model_dir, fp32_dir)
    dirs = {}
    for c in candidates:
        out = base / c.name
        out.mkdir(parents=True, exist_ok=True)
        for path in model_dir.iterdir():
            if path.is_file() and path.suffix in _MODEL_FILES and not (out / path.name).exists():
                (out / path.name).symlink_to(path.resolve())
        target = out / variants.get(c.variant).weight_file
        if not target.is_file():
            if c.recipe is None:
                target.symlink_to(fp32.resolve())
            else:
                started = time.perf_counter()
                recipe = c.recipe
                qa_tools.export.atomic_write(target, lambda tmp, r=recipe: r(fp32, tmp))
                log(f"  built {c.name} for {model_dir.name} in {time.perf_counter() - started:.0f} s")
        dirs[c.name] = out
    return dirs


def graph(dir_: Path, c: Candidate) -> Path:
    return (dir_ / variants.get(c.variant).weight_file).resolve()


# --- answers ------------------------------------------------------------------------------------------
def answer_all(dir_: Path, variant: str, items: Sequence[Item], batch: int = 8) -> list[list[Answer]]:
    engine = QAEngine.load(dir_, variant)
    params = QAParams(top_k=2)  # the runner-up, for the near-tie margins
    out: list[list[Answer]] = []
    for i in range(0, len(items), batch):
        out += engine.answer([(it.question, it.context) for it in items[i : i + batch]], params)
    return out


def _span(answers: list[Answer]) -> tuple[int, int]:
    return answers[0].start, answers[0].end


def scores(
    answers: Sequence[list[Answer]], reference: Sequence[list[Answer]], items: Sequence[Item]
) -> dict[str, float]:
    same = sum(_span(a) == _span(r) for a, r in zip(answers, reference, strict=True)) / len(items)
    em, f1 = em_f1([a[0] for a in answers], items)
    return {"same": 100 * same, "em": 100 * em, "f1": 100 * f1}


def near_ties(
    fast: Sequence[list[Answer]], reference: Sequence[list[Answer]], tau: float
) -> dict[str, float]:
    """Share of fast answers with top-1 - top-2 score < tau, and the same-span share if fp32 re-answered them."""
    n, rescored, same = len(fast), 0, 0
    for f, r in zip(fast, reference, strict=True):
        margin = f[0].score - (f[1].score if len(f) > 1 else 0.0)
        tied = margin < tau
        rescored += tied
        same += _span(r if tied else f) == _span(r)
    return {"rescored": 100 * rescored / n, "same": 100 * same / n}


# --- speed --------------------------------------------------------------------------------------------
def window_inputs(vocab_size: int, tokens: int = WINDOW_TOKENS) -> dict[str, np.ndarray]:
    """One full window; the values do not change the time (ids avoid the special tokens at the start)."""
    ids = 5 + (np.arange(tokens, dtype=np.int64) * 7919) % max(1, vocab_size - 5)
    segments = np.zeros(tokens, dtype=np.int64)
    segments[tokens // 4 :] = 1  # BERT-style models read the segment ids; RoBERTa's graph has no such input
    return {
        "input_ids": ids[None, :],
        "attention_mask": np.ones((1, tokens), dtype=np.int64),
        "token_type_ids": segments[None, :],
    }


def time_windows(graphs: dict[str, Path], vocab_size: int, repeats: int, label: str) -> dict[str, float]:
    """Median ms per window of each graph, one intra-op thread, the graphs interleaved round-robin."""
    sessions = {name: OnnxBackend(path, name=name, threads=1) for name, path in graphs.items()}
    inputs = window_inputs(vocab_size)
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    names = list(sessions)
    for r in range(WARM_UPS + repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            sessions[name].logits(inputs)
            if r >= WARM_UPS:
                samples[name].append((time.perf_counter() - started) * 1000)
        if r == WARM_UPS or (r + 1) % 10 == 0:
            log(f"  {label} timing: round {r + 1}/{WARM_UPS + repeats} (load {load_average()})")
    return {name: statistics.median(s) for name, s in samples.items()}


def vocab_size(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["vocab_size"])


# --- report -------------------------------------------------------------------------------------------
def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    rows = results["rows"]
    fast_ms = rows[FAST]["ms"]
    rb = results.get("roberta_base")
    head = [
        f"CPU: {m['cpu_line']}; onnxruntime {m['versions']['onnxruntime']}, Python {m['python']}, {m['os']}.",
        f"Date: {results['date']}. Command: `{results['command']}`.",
        f"Load average (1/5/15 min): start {results['load']['start']}, before timing {results['load']['timing']}, "
        f"end {results['load']['end']}.",
        f"Model: {results['model']}; questions: the first {results['questions']} answerable of "
        f"{results['squad']} (file order), top-1 answers through QAEngine, batches of 8, "
        f"{results['answer_threads']} threads.",
        f"ms/window: batch 1, {WINDOW_TOKENS} tokens, 1 intra-op thread, median of {args.repeats} after "
        f"{WARM_UPS} warm-ups, candidates interleaved round-robin; x fast = ratio to onnx-int8-fast's ms.",
        "",
    ]
    cols = "| candidate | recipe | same span as fp32 | EM | F1 | ms/window | x fast | MB |"
    sep = "|---|---|---:|---:|---:|---:|---:|---:|"
    if rb:
        cols += " roberta-base ms/window | x fast | MB |"
        sep += "---:|---:|---:|"
    lines = [*head, cols, sep]
    for c in CANDIDATES:
        r = rows[c.name]
        line = (
            f"| {c.name} | {c.description} | {r['same']:.1f}% | {r['em']:.1f} | {r['f1']:.1f} "
            f"| {r['ms']:.1f} | {r['ms'] / fast_ms:.2f}x | {r['mb']:.1f} |"
        )
        if rb:
            b = rb["rows"][c.name]
            line += f" {b['ms']:.0f} | {b['ms'] / rb['rows'][FAST]['ms']:.2f}x | {b['mb']:.0f} |"
        lines.append(line)
    lines += [
        "",
        "Near ties of onnx-int8-fast (top-1 minus top-2 score), re-answered by onnx-fp32 (a cascade):",
        "",
        "| margin below | share re-answered | same span as fp32 | cost per window (fast + share x fp32) |",
        "|---:|---:|---:|---:|",
    ]
    fp32_ms = rows[REFERENCE]["ms"]
    for tie in results["near_ties"]:
        cost = fast_ms + tie["rescored"] / 100 * fp32_ms
        lines.append(
            f"| {tie['tau']:.2f} | {tie['rescored']:.1f}% | {tie['same']:.1f}% | {cost:.1f} ms ({cost / fast_ms:.2f}x fast, "
            f"{cost / rows['onnx-int8']['ms']:.2f}x onnx-int8) |"
        )
    if rb:
        lines += [
            "",
            f"roberta-base: deepset/roberta-base-squad2's config, random weights ({rb['model']}); fp32 export "
            f"and recipes as above; speed and size only.",
        ]
    lines += ["", f"Whole run: {results['seconds'] / 60:.1f} min."]
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MINILM, help="a trained extractive-QA model directory")
    parser.add_argument("--squad", type=Path, default=SQUAD, help="SQuAD-format questions")
    parser.add_argument("--limit", type=int, default=1000, help="answerable questions, in file order")
    parser.add_argument("--repeats", type=int, default=20, help="timed windows per candidate (median)")
    parser.add_argument(
        "--roberta-base", action="store_true", help="also time each recipe on a roberta-base-shaped model"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-fidelity"))  # noqa: S108 - scratch
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    model_dir: Path = args.model.resolve()
    if not (model_dir / "config.json").is_file():
        print(
            f"no model at {args.model} (a trained extractive-QA model directory): pass --model DIR",
            file=sys.stderr,
        )
        return 2
    if not args.squad.is_file():
        print(f"no SQuAD-format file at {args.squad}: pass --squad FILE", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/fidelity.py " + " ".join(sys.argv[1:]),
        "load": {"start": load_average()},
        "model": model_dir.name,
        "squad": args.squad.name,
    }
    log(f"{cpu_line()}; load average {results['load']['start']}")
    dirs = build_all(model_dir, args.workdir / "graphs", CANDIDATES)
    items = load_items(args.squad, args.limit)
    results["questions"] = len(items)
    answers: dict[str, list[list[Answer]]] = {}
    for c in CANDIDATES:
        started = time.perf_counter()
        answers[c.name] = answer_all(dirs[c.name], c.variant, items)
        log(f"answered {len(items)} questions with {c.name} in {time.perf_counter() - started:.0f} s")
    results["answer_threads"] = available_cpus()
    rows = {c.name: scores(answers[c.name], answers[REFERENCE], items) for c in CANDIDATES}
    results["near_ties"] = [{"tau": t, **near_ties(answers[FAST], answers[REFERENCE], t)} for t in TIES]

    rb_graphs: dict[str, Path] = {}
    if args.roberta_base:
        corpus = _workload.corpus(_workload.load_squad(args.squad))
        log("roberta-base-shaped model (random weights) ...")
        rb_dir = build_roberta_base(args.workdir / "roberta-base-shaped", corpus)
        rb_dirs = build_all(rb_dir, args.workdir / "graphs", CANDIDATES)
        rb_graphs = {c.name: graph(rb_dirs[c.name], c) for c in CANDIDATES}
        results["roberta_base"] = {"model": rb_dir.name, "vocab_size": vocab_size(rb_dir), "rows": {}}
    results["load"]["timing"] = load_average()
    graphs = {c.name: graph(dirs[c.name], c) for c in CANDIDATES}
    ms = time_windows(graphs, vocab_size(model_dir), args.repeats, model_dir.name)
    for c in CANDIDATES:
        rows[c.name].update(ms=ms[c.name], mb=graphs[c.name].stat().st_size / 1e6)
    results["rows"] = rows
    if rb_graphs:
        rb_ms = time_windows(rb_graphs, results["roberta_base"]["vocab_size"], args.repeats, "roberta-base")
        results["roberta_base"]["rows"] = {
            name: {"ms": rb_ms[name], "mb": path.stat().st_size / 1e6} for name, path in rb_graphs.items()
        }
    results["load"]["end"] = load_average()
    results["seconds"] = time.perf_counter() - began
    print(render(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
