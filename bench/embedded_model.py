"""Does the embedded model (fp16-stored weights) answer as its fp32 original does, on every backend?

    python bench/embedded_model.py [--original ../shared/models/minilm-l6-squad] [--data ../shared/data/xquad.en.json]

For torch, onnx-fp32 and onnx-int8, each built from the original and from the embedded copy
(``qa_tools.EMBEDDED_MODEL``, written by ``python -m qa_tools.embedded_model``): every question of ``--data``
through the serving engine (``QAEngine.load``, the API's default parameters, batches of 8), and the share of
top-1 answers with the same span (start and end character offsets) from both, with SQuAD EM / F1 of each.

Markdown on stdout (header: CPU and its int8 flags, threads, load average); progress on stderr. The ONNX files
are built into a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _machine import cpu_line, load_average  # noqa: E402
from _shared import MINILM, XQUAD  # noqa: E402

from handler.backends import available_cpus  # noqa: E402
from handler.engine import QAEngine  # noqa: E402
from qa_tools import EMBEDDED_MODEL  # noqa: E402
from qa_tools.quantize import build_int8  # noqa: E402
from qa_tools.squad import SquadItem, evaluate, read_squad  # noqa: E402

BACKENDS = ("torch", "onnx-fp32", "onnx-int8")
BATCH = 8

Span = tuple[str, int, int]


def served_copy(model: Path, into: Path) -> Path:
    """The model's files linked into ``into``, with the ONNX variants built beside them."""
    into.mkdir(parents=True)
    for path in model.iterdir():
        if path.is_file() and path.suffix in (".json", ".safetensors", ".txt"):
            (into / path.name).symlink_to(path.resolve())
    build_int8(into, into)  # and the fp32 export it is quantized from
    return into


def spans(model_dir: Path, variant: str, items: list[SquadItem]) -> tuple[list[Span], float]:
    engine = QAEngine.load(model_dir, variant)
    started = time.perf_counter()
    found: list[Span] = []
    for i in range(0, len(items), BATCH):
        chunk = items[i : i + BATCH]
        for answers in engine.answer([(it.question, it.context) for it in chunk]):
            top = answers[0]
            found.append((top.answer, top.start, top.end))
    return found, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, default=MINILM)
    parser.add_argument("--embedded", type=Path, default=EMBEDDED_MODEL)
    parser.add_argument("--data", type=Path, default=XQUAD)
    args = parser.parse_args(argv)
    for path in (args.original, args.embedded, args.data):
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    items = list(read_squad(args.data))
    rows = []
    with tempfile.TemporaryDirectory(prefix="embedded-bench-") as tmp:
        print("building the ONNX variants of both ...", file=sys.stderr)
        original = served_copy(args.original, Path(tmp) / "original")
        embedded = served_copy(args.embedded, Path(tmp) / "embedded")
        for variant in BACKENDS:
            print(f"{variant}: {len(items)} questions, original then embedded ...", file=sys.stderr)
            ours, took_o = spans(original, variant, items)
            theirs, took_e = spans(embedded, variant, items)
            same = sum(a[1:] == b[1:] for a, b in zip(ours, theirs, strict=True))
            scores = [
                evaluate(items, {it.id: s[0] for it, s in zip(items, found, strict=True)})
                for found in (ours, theirs)
            ]
            rows.append((variant, same, scores, took_o, took_e))
    print(f"# Embedded model (fp16-stored) vs its fp32 original: {args.data.name}, {len(items)} questions\n")
    print(f"CPU: {cpu_line()}; threads {available_cpus()}; load average {load_average()} (start of report)\n")
    print("| backend | same span | EM / F1 original | EM / F1 embedded | s original / embedded |")
    print("| --- | --- | --- | --- | --- |")
    for variant, same, (o, e), took_o, took_e in rows:
        print(
            f"| {variant} | {same}/{len(items)} ({same / len(items):.1%}) | {o['exact']:.2f} / {o['f1']:.2f} "
            f"| {e['exact']:.2f} / {e['f1']:.2f} | {took_o:.0f} / {took_e:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
