"""The answer cache's effect on a workload with repeated questions, through ``lambda_handler``.

    python bench/answer_cache.py [--model ../shared/models/minilm-l6-squad] [--requests 300] [--repeat 0.3]

Two sandboxes in one process, each a fresh init of ``handler.app`` (as tests/fixtures/lambda_env.py does):
one with ``ANSWER_CACHE_ENTRIES=0`` (off), one with the defaults (on). The workload is a sequence of direct
invokes ``{"question", "context"}`` from SQuAD 2.0 dev (questions shuffled with a fixed seed); each request
is, with probability ``--repeat``, a repeat of an earlier one (picked uniformly), else a new question. Both
sandboxes get the same sequence, interleaved request by request (alternating which goes first), so load from
other work on a shared machine hits both alike. Reported: mean, p50, p90 and total time per request, the
mean speed-up, hits, the cache's bytes, and how many answers are identical (the whole response, scores
included) between the two. Table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _machine import cpu_line, load_average  # noqa: E402
from _protocol import LambdaContext  # noqa: E402
from _shared import MINILM, SQUAD  # noqa: E402


def init_sandbox(env: dict[str, str]) -> ModuleType:
    """A fresh ``import handler.app`` (Lambda's init) with these variables set."""
    for name in ("ANSWER_CACHE_ENTRIES", "ANSWER_CACHE_MB", "MODEL_S3_URI"):
        os.environ.pop(name, None)
    os.environ.update(env)
    sys.modules.pop("handler.app", None)
    return importlib.import_module("handler.app")


def workload(path: Path, requests: int, repeat: float, seed: int) -> tuple[list[dict[str, str]], int]:
    """The request sequence and how many of its requests repeat an earlier one."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    pairs = [
        {"question": q["question"], "context": p["context"]}
        for a in data
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    rng.shuffle(pairs)
    sequence: list[dict[str, str]] = []
    fresh = iter(pairs)
    repeats = 0
    for _ in range(requests):
        if sequence and rng.random() < repeat:
            sequence.append(rng.choice(sequence))
            repeats += 1
        else:
            sequence.append(next(fresh))
    return sequence, repeats


def timed(app: ModuleType, event: dict[str, Any]) -> tuple[float, Any]:
    with contextlib.redirect_stdout(open(os.devnull, "w")) as sink:  # the EMF metrics lines
        start = time.perf_counter()
        result = app.lambda_handler(dict(event), LambdaContext())
        elapsed = time.perf_counter() - start
        sink.close()
    return elapsed * 1000, result


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "mean": statistics.fmean(ms),
        "p50": ordered[len(ordered) // 2],
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "total_s": sum(ms) / 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MINILM, help=f"a model directory (default {MINILM})")
    parser.add_argument("--data", type=Path, default=SQUAD, help=f"SQuAD-format questions (default {SQUAD})")
    parser.add_argument("--backend", default="torch", help="QA_BACKEND (the model directory must have it)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeat", type=float, default=0.3, help="probability that a request repeats one")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in (args.model, args.data):
        if not path.exists():
            print(f"{path} is absent (see ../shared/README.md)", file=sys.stderr)
            return 2

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    base = {"MODEL_LOCAL_PATH": str(args.model), "QA_BACKEND": args.backend}
    print("init: cache off, then cache on", file=sys.stderr)
    off = init_sandbox({**base, "ANSWER_CACHE_ENTRIES": "0"})
    on = init_sandbox(base)
    cache = on.SERVICE.cache
    assert off.SERVICE.cache is None
    assert cache is not None
    sequence, repeats = workload(args.data, args.requests, args.repeat, args.seed)
    load_start = load_average()
    times: dict[str, list[float]] = {"off": [], "on": []}
    identical = 0
    for i, event in enumerate(sequence):
        order = (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off))
        results = {}
        for name, app in order:
            ms, results[name] = timed(app, event)
            times[name].append(ms)
        identical += results["on"] == results["off"]
        if (i + 1) % 50 == 0:
            print(f"{i + 1}/{len(sequence)} requests", file=sys.stderr)
    off_s, on_s = summary(times["off"]), summary(times["on"])
    print(f"CPU: {cpu_line()}")
    print(f"Load average (1/5/15 min): start {load_start}, end {load_average()}")
    print(
        f"Model: {args.model.name} ({args.backend}, {on.SERVICE.info.get('threads', '?')} threads); "
        f"{len(sequence)} direct invokes from {args.data.name}, {repeats} repeats ({repeats / len(sequence):.0%}), "
        f"seed {args.seed}; cache {cache.max_entries} entries / {cache.max_bytes >> 20} MB"
    )
    print()
    print("| cache | mean ms | p50 ms | p90 ms | total s |")
    print("|---|---:|---:|---:|---:|")
    for name, s in (("off", off_s), ("on", on_s)):
        print(f"| {name} | {s['mean']:.1f} | {s['p50']:.1f} | {s['p90']:.1f} | {s['total_s']:.2f} |")
    print()
    print(
        f"Speed-up of the mean: {off_s['mean'] / on_s['mean']:.2f}x; hits {cache.hits}, misses {cache.misses}; "
        f"cache holds {len(cache)} entries, {cache.bytes / 1024:.0f} KiB; "
        f"identical responses {identical}/{len(sequence)}"
    )
    return 0 if identical == len(sequence) else 1


if __name__ == "__main__":
    sys.exit(main())
