"""Distributed Map items one per forward pass vs eight in one batch, sharing forward passes of up to
``MAX_BATCH_WINDOWS`` windows (what ``handler.api.batch`` does), both through the function's service path:
time per question of each, measured interleaved in one run, their ratio, and how many answers have the same
span.

    python bench/bulk_items.py [--data squad-dev-v2.0.json] [--model DIR] [--questions 96] [--rounds 2]

Default model: roberta-base-squad2's exact config with random weights (bench/_roberta_base.py; speed does not
depend on weight values), its tokenizer trained on --data, cached under --workdir. Questions: the first
answerable ones of --data (SQuAD format). On a shared machine the ratio, measured in one run, is the figure
to trust.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _workload  # noqa: E402
from _machine import load_average, machine  # noqa: E402
from _roberta_base import build_roberta_base  # noqa: E402
from coldstart import SQUAD  # noqa: E402

GROUP = 8  # questions per batch, as in the Performance table's warm requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SQUAD, help=f"SQuAD-format questions (default: {SQUAD})")
    parser.add_argument("--model", type=Path, help="a model directory (default: the roberta-base stand-in)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-bulk"))  # noqa: S108 - scratch
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from qa_tools.bulk.runner import local_service
    from qa_tools.squad import read_squad

    if not args.data.is_file():
        parser.error(f"no SQuAD-format file at {args.data}: pass --data")
    info = {"machine": machine(), "load_average_start": load_average(), "data": str(args.data)}
    squad = itertools.islice((q for q in read_squad(args.data) if q.answerable), args.questions)
    pairs = [(q.question, q.context) for q in squad]
    if args.model is None:
        corpus = _workload.corpus(_workload.load_squad(args.data))
        args.model = build_roberta_base(args.workdir / "roberta-base-shaped", corpus)
    model = args.model
    # Off: both arms ask the same questions, so the grouped arm would read the single arm's cached answers.
    os.environ["ANSWER_CACHE_ENTRIES"] = "0"
    service = local_service(str(model))

    from handler.api import answer_batch, prepare_item
    from handler.observability import metrics

    def answer(chunk: list[tuple[str, str]]) -> list[dict[str, Any]]:
        prepared = [prepare_item({"question": q, "context": c}, {}, service) for q, c in chunk]
        return answer_batch(prepared, service, lambda: None)

    alone = grouped = 0.0
    same = 0
    for _ in range(args.rounds):
        for i in range(0, len(pairs), GROUP):
            chunk = pairs[i : i + GROUP]
            start = time.perf_counter()
            singles = [answer([pair])[0] for pair in chunk]
            alone += time.perf_counter() - start
            start = time.perf_counter()
            together = answer(chunk)
            grouped += time.perf_counter() - start
            metrics.clear_metrics()  # the function's EMF metrics: not wanted on stdout here
            same += sum(
                (a["start"], a["end"]) == (b["start"], b["end"])
                for a, b in zip(singles, together, strict=True)
            )
    n = len(pairs) * args.rounds
    info.update(
        model=str(model),
        questions=len(pairs),
        rounds=args.rounds,
        ms_per_question_one_per_pass=round(1000 * alone / n, 1),
        ms_per_question_eight_per_batch=round(1000 * grouped / n, 1),
        ratio=round(alone / grouped, 3),
        identical_spans=f"{same}/{n}",
        load_average_end=load_average(),
        threads=os.environ.get("OMP_NUM_THREADS", "default"),
    )
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
