"""Writes the committed XQuAD-en slice and its reference answers, for tests/integration/test_real_answers.py.

    python bench/real_answers_reference.py --reference-python .venv-ref/bin/python \\
        [--xquad ../shared/data/xquad.en.json]

1. ``tests/data/xquad.en.slice.json``: the first paragraph of each of XQuAD-en's 48 articles, whole, with all
   its questions (SQuAD v1.1 format, as in XQuAD).
2. ``tests/data/xquad.en.slice.reference.json``: the embedded model's answers to every question of the slice
   from the unmodified transformers 4.57 ``question-answering`` pipeline (``bench/_reference_pipeline.py``, torch
   fp32, default parameters: top_k 1, max_answer_len 15, max_seq_len 384, doc_stride 128), with their official
   SQuAD EM / F1 (``qa_tools.squad``), the versions that made them and this command line.

Measured once; re-run only when the embedded model or the slice changes (``make-reference-venv.sh`` builds
``--reference-python``). Both files are small (the slice ~140 KB), CC BY-SA 4.0 as XQuAD (tests/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from handler.store import sha256_file  # noqa: E402
from qa_tools import EMBEDDED_MODEL  # noqa: E402
from qa_tools.squad import evaluate, read_squad  # noqa: E402

SLICE = REPO / "tests" / "data" / "xquad.en.slice.json"
REFERENCE = REPO / "tests" / "data" / "xquad.en.slice.reference.json"
REFERENCE_SCRIPT = BENCH / "_reference_pipeline.py"


def make_slice(xquad: dict[str, Any]) -> dict[str, Any]:
    """The first paragraph of every article: each topic once, every question with its whole context."""
    articles = [{"title": a["title"], "paragraphs": a["paragraphs"][:1]} for a in xquad["data"]]
    return {"version": xquad.get("version", "1.1"), "data": articles}


def run_pipeline(python: str, cases: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reference-") as tmp:
        spec, out = Path(tmp) / "cases.json", Path(tmp) / "answers.json"
        spec.write_text(json.dumps({"model": str(EMBEDDED_MODEL), "cases": cases}), encoding="utf-8")
        # cwd: keep this repository off the reference interpreter's path
        command = [python, str(REFERENCE_SCRIPT), str(spec), str(out), "--threads", str(threads)]
        subprocess.run(command, check=True, cwd=tmp)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference-python",
        required=True,
        type=os.path.abspath,
        help="an interpreter with transformers 4.57",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the pipeline (default: 1)")
    parser.add_argument("--xquad", type=Path, default=REPO.parent / "shared" / "data" / "xquad.en.json")
    args = parser.parse_args(argv)
    SLICE.parent.mkdir(parents=True, exist_ok=True)
    SLICE.write_text(
        json.dumps(make_slice(json.loads(args.xquad.read_text(encoding="utf-8"))), ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    items = list(read_squad(SLICE))
    cases = [{"id": it.id, "question": it.question, "context": it.context, "params": {}} for it in items]
    print(f"{len(items)} questions: the 4.57 pipeline on {EMBEDDED_MODEL.name} ...", file=sys.stderr)
    result = run_pipeline(args.reference_python, cases, args.threads)
    answers = {r["id"]: r["answers"][0] for r in result["results"]}  # an error here is a broken reference
    scores = evaluate(items, {k: a["answer"] for k, a in answers.items()})
    command = [
        ".venv/bin/python",
        "bench/real_answers_reference.py",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    reference = {
        "made_by": f"bash scripts/make-reference-venv.sh && {shlex.join(command)}",
        "data": str(SLICE.relative_to(REPO)),
        "model": str(EMBEDDED_MODEL.relative_to(REPO)),
        "weights_sha256": sha256_file(EMBEDDED_MODEL / "model.safetensors"),
        "pipeline": "transformers question-answering pipeline, torch fp32, default parameters",
        "meta": result["meta"],
        "exact": round(scores["exact"], 2),
        "f1": round(scores["f1"], 2),
        "total": len(items),
        "answers": {k: [a["answer"], a["start"], a["end"]] for k, a in answers.items()},
    }
    REFERENCE.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: reference[k] for k in ("exact", "f1", "total", "meta")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
