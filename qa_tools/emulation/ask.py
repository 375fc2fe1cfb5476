"""Questions in, the function's answers out: runs inside the (emulated) interpreter, through the handler.

Each variant is served as the function serves it: ``Settings.from_env`` with ``MODEL_LOCAL_PATH`` (a model baked
into the image), the init's ``load_service`` (warm-up included) and the direct-invoke handler, batches of
``BATCH`` questions per invoke with ``top_k`` answers (the comparison needs the runner-up's score). Imports only the standard library and
``handler``: the arm64 root holds nothing else. Results (JSON) on stdout; progress and the function's logs on
stderr (file descriptor 1 points at stderr while the function runs, so no log line can corrupt the result).

    python -m qa_tools.emulation.ask --model DIR --variant onnx-int8 --questions questions.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOP_K = 2
# Questions per invoke: a batch shares forward passes, which under emulation costs far less than one each.
BATCH = 8
# The function's environment for these runs: logs quiet, metrics given a namespace (they are never flushed).
QUIET = {
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_NAMESPACE": "emulation",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def _progress(message: str) -> None:
    print(f"[{platform.machine()}] {message}", file=sys.stderr, flush=True)


def ask(
    model: Path, variant_name: str, questions: Sequence[dict[str, str]], top_k: int = TOP_K
) -> dict[str, Any]:
    """Every question's ``top_k`` answers from a fresh service of ``variant_name``; timings in seconds."""
    from handler import variants
    from handler.api import handle_direct
    from handler.runtime.loader import load_service
    from handler.settings import Settings

    variant = variants.get(variant_name)
    os.environ.update(QUIET)
    os.environ.update(
        {
            "MODEL_LOCAL_PATH": str(model),
            "QA_BACKEND": variant.backend,
            variant.precision_env: variant.precision,
        }
    )
    started = time.perf_counter()
    service = load_service(Settings.from_env())
    if service.engine is None:
        raise SystemExit(f"{variant_name}: {service.unavailable}")
    loaded = time.perf_counter()
    _progress(f"{variant_name}: loaded and warmed up in {loaded - started:.1f} s")
    answers: dict[str, list[dict[str, Any]]] = {}
    for first in range(0, len(questions), BATCH):
        chunk = questions[first : first + BATCH]
        event = {
            "inputs": [{"question": q["question"], "context": q["context"]} for q in chunk],
            "parameters": {"top_k": top_k},
        }
        result = handle_direct(event, None, service)
        if isinstance(result, dict) and "error" in result:
            raise SystemExit(f"{variant_name}: {result['error']}")
        answers.update({q["id"]: found for q, found in zip(chunk, result, strict=True)})
        _progress(f"{variant_name}: {len(answers)}/{len(questions)} ({time.perf_counter() - loaded:.1f} s)")
    return {
        "load_s": round(loaded - started, 2),
        "answer_s": round(time.perf_counter() - loaded, 2),
        "answers": answers,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, required=True, help="a model directory holding the variants' files"
    )
    parser.add_argument("--variant", action="append", required=True, help="repeat for several")
    parser.add_argument(
        "--questions", type=Path, required=True, help='JSON list of {"id", "question", "context"}'
    )
    parser.add_argument("--top-k", type=int, default=TOP_K)
    args = parser.parse_args(argv)
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the function's logs (stdout on Lambda) go to stderr here
    from handler.hardware import cpu

    results = {name: ask(args.model, name, questions, args.top_k) for name in args.variant}
    report = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": cpu.describe(),
        "results": results,
    }
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        json.dump(report, out)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
