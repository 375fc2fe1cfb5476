"""Which thread count a memory size should run: the same model under the same CPU quota with each candidate.

    python bench/thread_rule.py [--model ../shared/models/minilm-l6-squad] [--memory 2048] [--threads 1,2]
        [--variant onnx-int8] [--requests 20]

``round`` and ``ceil`` of the share (memory / 1,769 MB) differ only just above a whole vCPU: at 2,048 MB
(1.16 vCPUs) round says 1 thread, ceil 2. Each candidate is a child process in its own cgroup v1 group with
that size's quota (``bench/_cgroup.py``) and ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` set, so ONNX Runtime's
spinning follows the function's rule for that thread count (off when the share is below it). The children
answer the same single-question requests (SQuAD 2.0 dev paragraphs) through ``QAEngine``, interleaved request
by request; the model is published locally first (every variant, ONNX exports cached in ``--workdir``).
Table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _cgroup  # noqa: E402
import _publish  # noqa: E402
import _workload  # noqa: E402
from _machine import cpu_line, load_average  # noqa: E402
from _shared import MINILM, SQUAD  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def published(model: Path, workdir: Path) -> Path:
    """Every variant of ``model`` in a local directory (qa_tools.publish), built once per work directory."""
    from handler import variants
    from qa_tools.publish import publish

    target = workdir / f"published-{model.name}"
    if not (target / "manifest.json").is_file():
        log(f"publishing {model.name} locally (ONNX exports cached in {workdir / 'onnx-cache'}) ...")
        with _publish.cached_export(workdir / "onnx-cache"):
            publish(str(model), str(target), variants=variants.NAMES, progress=False, allow_lossy=True)
    return target


def child(model: Path, variant_name: str, threads: int) -> int:
    """Loads the variant with ``threads`` (spinning by the rule), then answers requests from stdin."""
    from handler import variants
    from handler.engine import QAEngine
    from handler.engine.tokenization import WindowTokenizer
    from handler.model_files import as_model_files

    variant = variants.get(variant_name)
    files = as_model_files(model)
    backend = variant.load(files, variant, threads=threads)
    engine = QAEngine(WindowTokenizer.from_files(files), backend)
    engine.answer([("warm up?", "The first inference warms the model up.")])
    print(json.dumps({"ready": True, **backend.describe()}), flush=True)
    for line in sys.stdin:
        question, context = json.loads(line)
        started = time.perf_counter()
        found = engine.answer([(question, context)])[0][0]
        ms = (time.perf_counter() - started) * 1000
        print(json.dumps({"ms": ms, "span": [found.start, found.end]}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MINILM)
    parser.add_argument("--memory", type=int, default=2048)
    parser.add_argument("--threads", default="1,2", help="candidates, comma-separated")
    parser.add_argument("--variant", default="onnx-int8")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-threads"))  # noqa: S108 - scratch
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.model, args.variant, args.child)
    reason = _cgroup.unavailable()
    if reason or not args.model.is_dir():
        print(f"cannot run: {reason or f'{args.model} is absent'}", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = published(args.model, args.workdir)
    articles = _workload.load_squad(SQUAD) if SQUAD.is_file() else _workload.generate_articles()
    paragraphs = [p for a in articles for p in a.paragraphs]
    step = max(1, len(paragraphs) // args.requests)
    pairs = [(p.questions[0], p.context) for p in paragraphs[::step][: args.requests]]
    candidates = [int(t) for t in args.threads.split(",")]
    load_start = load_average()
    ms: dict[int, list[float]] = {t: [] for t in candidates}
    spans: dict[int, list[Any]] = {t: [] for t in candidates}
    described: dict[int, dict[str, Any]] = {}
    throttled: dict[int, int] = {}
    with ExitStack() as stack:
        quotas = {t: stack.enter_context(_cgroup.quota(args.memory)) for t in candidates}
        env = {**os.environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(args.memory)}
        procs = {
            t: subprocess.Popen(
                [
                    *quotas[t].prefix(),
                    sys.executable,
                    __file__,
                    "--model",
                    str(model),
                    "--variant",
                    args.variant,
                    "--child",
                    str(t),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
            for t in candidates
        }
        try:
            for t, proc in procs.items():
                assert proc.stdout is not None
                described[t] = json.loads(proc.stdout.readline())
            log(f"{args.memory} MB, quota {quotas[candidates[0]].cores:.2f} cores: {described}")
            for i, pair in enumerate(pairs):
                for t in candidates if i % 2 == 0 else candidates[::-1]:
                    proc = procs[t]
                    assert proc.stdin is not None
                    assert proc.stdout is not None
                    proc.stdin.write(json.dumps(pair) + "\n")
                    proc.stdin.flush()
                    reply = json.loads(proc.stdout.readline())
                    ms[t].append(reply["ms"])
                    spans[t].append(reply["span"])
                if (i + 1) % 10 == 0:
                    log(f"{i + 1}/{len(pairs)} requests")
        finally:
            for proc in procs.values():
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=60)
        throttled = {t: quotas[t].throttled()["nr_throttled"] for t in candidates}
    print(f"CPU: {cpu_line()}")
    print(
        f"Quota: {args.memory} MB = {args.memory / _cgroup.MB_PER_VCPU:.2f} vCPUs (cgroup v1 CFS, period "
        f"{_cgroup.PERIOD_US} us); load average start {load_start}, end {load_average()}"
    )
    print(f"Model: {args.model.name}, {args.variant}; {len(pairs)} single-question requests, interleaved")
    print()
    print("| threads | spinning | p50 ms | p90 ms | mean ms | throttled periods |")
    print("|---:|---|---:|---:|---:|---:|")
    for t in candidates:
        s = sorted(ms[t])
        print(
            f"| {t} | {described[t].get('spinning', '-')} | {s[len(s) // 2]:.1f} | "
            f"{s[min(len(s) - 1, int(0.9 * len(s)))]:.1f} | {statistics.fmean(s):.1f} | {throttled[t]} |"
        )
    same = sum(len({json.dumps(spans[t][i]) for t in candidates}) == 1 for i in range(len(pairs)))
    print(f"\nSame span from every candidate: {same}/{len(pairs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
