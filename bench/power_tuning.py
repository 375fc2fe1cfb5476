"""Power tuning: the function at each Lambda memory size, under that size's CPU quota, as AWS Lambda Power
Tuning would measure it -- init, latency per request and cost per million requests -- with its chart.

    python bench/power_tuning.py --seeds-python .venv-ref/bin/python [--minilm] [--requests 8]
        [--memory 1024,1769,2048,3008,3538,5307] [--configs seeds,torch,onnx-fp32,onnx-int8,onnx-int8-fast]
        [--chart CHART.png]

For each memory size, each configuration (``bench/coldstart.py``'s five: the seeds' recipe and our four
variants) is a fresh sandbox process started inside its own cgroup v1 group whose CFS quota is Lambda's
share for that size -- memory / 1,769 MB vCPUs -- capped at this machine's cores (``bench/_cgroup.py``; 5,307
MB sees 3 cores on Lambda, here at most 2). Our sandboxes get ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, so they
choose their threads by the function's rule (``handler.hardware.threads``). Each cold-starts through the real
handler (``bench/_probe.py``: imports, download from a local S3, load, warm-up, first answer; the seeds'
recipe through ``bench/_seeds_recipe.py``), then answers ``--requests`` warm direct invokes, one question on
one SQuAD paragraph each, interleaved across the configurations of that size so load from other work hits all
alike. Reported per size and configuration: init (to the first answer), warm p50 / p90 / mean, throttled
periods, and cost per 1M requests at x86 and arm64 prices (``bench/_prices.py``; arm64 priced with the
duration measured here on x86: Graviton's own speed is not measured). The model is the roberta-base-shaped
stand-in (``bench/_roberta_base.py``), or ``--minilm`` (../shared/models/minilm-l6-squad) for a quick run.
Table on stdout, progress on stderr, raw results (JSON) and the chart (PNG) in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
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
import _moto  # noqa: E402
import _publish  # noqa: E402
import _workload  # noqa: E402
from _machine import cpu_line, cpu_model, load_average  # noqa: E402
from _prices import PRICES_DATE, PRICES_SOURCE, usd_per_million  # noqa: E402
from _report import SEEDS  # noqa: E402
from _roberta_base import build_roberta_base  # noqa: E402
from _shared import MINILM, SQUAD  # noqa: E402
from coldstart import (  # noqa: E402
    CONFIGS,
    Config,
    Runner,
    Sandbox,
    log,
    prime_page_cache,
    rotated,
    seeds_interpreter,
)

MEMORY_SIZES = (1024, 1769, 2048, 3008, 3538, 5307)
ARCHITECTURES = ("x86_64", "arm64")


class QuotaRunner(Runner):
    """``coldstart.Runner`` whose sandboxes start inside ``quota``'s group and know their memory size."""

    quota: _cgroup.Quota | None = None

    def spawn(self, config: Config, *, cold_only: bool) -> Sandbox:
        assert self.quota is not None
        self.spawned += 1
        model_dir = self.workdir / "sandboxes" / f"{config.key}-{self.spawned}"
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        env = {**os.environ, **self.child_env, **config.env, "MODEL_DIR": str(model_dir)}
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(self.quota.memory_mb)  # Lambda sets it for every runtime
        if config.key == SEEDS:
            command = [*self.seeds_command, "--model-uri", _publish.SEEDS_URI]
        else:  # ours: the function's thread rule reads the memory size (the seeds' recipe ignores it)
            command = [sys.executable, str(BENCH / "_probe.py")]
            env["MODEL_S3_URI"] = _publish.OURS_URI
        command = [*self.quota.prefix(), *command, str(self.requests_path)] + (
            ["--cold-only"] if cold_only else []
        )
        log_path = self.workdir / "logs" / f"{config.key}-{self.quota.memory_mb}-{self.spawned}.log"
        return Sandbox(config, command, env, log_path)


def requests_file(workdir: Path, count: int) -> Path:
    """One question on one SQuAD paragraph per request (what an API client sends), ``count`` + 1 of them."""
    articles = _workload.load_squad(SQUAD) if SQUAD.is_file() else _workload.generate_articles()
    paragraphs = [p for a in articles for p in a.paragraphs]
    step = max(1, len(paragraphs) // (count + 1))
    payloads = [{"question": p.questions[0], "context": p.context} for p in paragraphs[::step][: count + 1]]
    path = workdir / "requests.json"
    path.write_text(json.dumps({"first": payloads[0], "single": payloads[1:]}), encoding="utf-8")
    return path


def measure_size(
    runner: QuotaRunner, configs: list[Config], memory_mb: int, count: int
) -> dict[str, dict[str, Any]]:
    """Cold start then ``count`` interleaved warm requests for every configuration, each in its own group."""
    out: dict[str, dict[str, Any]] = {}
    alive: dict[str, Sandbox] = {}
    quotas: dict[str, _cgroup.Quota] = {}
    with ExitStack() as stack:
        try:
            for config in configs:
                runner.quota = quotas[config.key] = stack.enter_context(_cgroup.quota(memory_mb))
                ready, sandbox = runner.cold_start(config, keep=True)
                assert sandbox is not None
                alive[config.key] = sandbox
                out[config.key] = {
                    "init_s": ready["total_s"],
                    "ms": [],
                    "describe": ready.get("describe", {}),
                }
            for i in range(count):
                for config in rotated(tuple(configs), i):
                    reply = alive[config.key].ask({"workload": "single", "index": i})
                    out[config.key]["ms"].append(reply["ms"])
            for key, sandbox in alive.items():
                out[key]["peak_rss_mib"] = sandbox.ask({"done": True})["peak_rss_mib"]
                out[key]["nr_throttled"] = quotas[key].throttled()["nr_throttled"]
        finally:
            for sandbox in alive.values():
                if sandbox.process.poll() is None:
                    sandbox.process.kill()
                sandbox.close()
    return out


def summarise(memory_mb: int, result: dict[str, Any]) -> dict[str, Any]:
    ms = sorted(result["ms"])
    mean = statistics.fmean(ms)
    row = {
        "memory_mb": memory_mb,
        "init_s": result["init_s"],
        "p50_ms": ms[len(ms) // 2],
        "p90_ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        "mean_ms": mean,
        "nr_throttled": result.get("nr_throttled", 0),
        "threads": result["describe"].get("threads", "-"),
    }
    for arch in ARCHITECTURES:
        row[f"usd_per_million_{arch}"] = usd_per_million(mean, memory_mb, arch)
    return row


def render(rows: dict[str, list[dict[str, Any]]], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append(
        "| config | MB | cores here | threads | init s | p50 ms | p90 ms | mean ms | throttled | "
        "$/1M x86 | $/1M arm64 |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, series in rows.items():
        for r in series:
            cores = min(r["memory_mb"] / _cgroup.MB_PER_VCPU, len(os.sched_getaffinity(0)))
            lines.append(
                f"| {key} | {r['memory_mb']} | {cores:.2f} | {r['threads']} | {r['init_s']:.1f} | "
                f"{r['p50_ms']:.0f} | {r['p90_ms']:.0f} | {r['mean_ms']:.0f} | {r['nr_throttled']} | "
                f"{r['usd_per_million_x86_64']:.2f} | {r['usd_per_million_arm64']:.2f} |"
            )
    cheapest = {
        key: min(series, key=lambda r: r["usd_per_million_x86_64"])["memory_mb"]
        for key, series in rows.items()
    }
    fastest = {key: min(series, key=lambda r: r["p50_ms"])["memory_mb"] for key, series in rows.items()}
    lines += ["", f"Cheapest memory size (x86): {cheapest}", f"Fastest memory size (p50): {fastest}"]
    return "\n".join(lines)


def chart(rows: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Power Tuning's chart for each configuration: latency (line, left axis) and cost (line, right axis)
    against memory size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3.6 * len(rows), 3.4), squeeze=False)
    for ax, (key, series) in zip(axes[0], rows.items(), strict=True):
        memory = [str(r["memory_mb"]) for r in series]
        ax.plot(memory, [r["p50_ms"] for r in series], "o-", color="#d62728", label="p50 latency (ms)")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("memory (MB)", fontsize=8)
        ax.set_ylabel("p50 latency (ms)", color="#d62728", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        cost = ax.twinx()
        cost.plot(memory, [r["usd_per_million_x86_64"] for r in series], "s--", color="#1f77b4")
        cost.set_ylabel("$ per 1M requests (x86)", color="#1f77b4", fontsize=8)
        cost.tick_params(labelsize=7)
        cost.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-power"))  # noqa: S108 - scratch
    parser.add_argument("--seeds-python", type=os.path.abspath, help="transformers 4.x interpreter")
    parser.add_argument("--minilm", action="store_true", help=f"{MINILM} instead of roberta-base")
    parser.add_argument("--requests", type=int, default=8, help="warm requests per size and configuration")
    parser.add_argument("--memory", default=",".join(map(str, MEMORY_SIZES)), help="MB, comma-separated")
    parser.add_argument("--configs", default=",".join(c.key for c in CONFIGS), help="comma-separated")
    parser.add_argument("--chart", type=Path, help="PNG path (default: WORKDIR/power-tuning.png)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    reason = _cgroup.unavailable()
    if reason:
        print(f"cannot set CPU quotas here: {reason}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    workdir: Path = args.workdir
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    if args.minilm:
        if not (MINILM / "model.safetensors").is_file():
            print(f"{MINILM} is absent", file=sys.stderr)
            return 2
        model_dir, model_name = MINILM, MINILM.name
    else:
        articles = _workload.load_squad(SQUAD) if SQUAD.is_file() else _workload.generate_articles()
        model_dir = build_roberta_base(workdir / "roberta-base-shaped", _workload.corpus(articles))
        model_name = "roberta-base-shaped (deepset/roberta-base-squad2's config, random weights)"
    requests_path = requests_file(workdir, args.requests)
    wanted = args.configs.split(",")
    configs = [c for c in CONFIGS if c.key in wanted]
    sizes = [int(m) for m in args.memory.split(",")]
    seeds_command, seeds_kind = seeds_interpreter(args.seeds_python, workdir)

    port = _moto.free_port()
    child_env = {
        **_moto.client_env(port, workdir),
        "POWERTOOLS_METRICS_DISABLED": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "ANSWER_CACHE_ENTRIES": "0",  # every warm request is a different question anyway; measure the model
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        os.environ.pop(name, None)
    os.environ.update(child_env)
    server = _moto.start(port)
    results: dict[str, Any] = {"sizes": {}}
    try:
        log(f"publishing {model_dir.name} to the local S3 ...")
        _publish.stage(model_dir, workdir / "onnx-cache")
        prime_page_cache(seeds_command)
        log(f"setup done in {time.perf_counter() - began:.0f} s; seeds' recipe: {seeds_kind}")
        runner = QuotaRunner(workdir, requests_path, seeds_command, child_env)
        for memory in sizes:
            granted = min(memory / _cgroup.MB_PER_VCPU, len(os.sched_getaffinity(0)))
            log(f"{memory} MB: quota {granted:.2f} cores (load {load_average()})")
            results["sizes"][memory] = measure_size(runner, configs, memory, args.requests)
    finally:
        server.terminate()
        server.wait()

    rows = {c.key: [summarise(m, results["sizes"][m][c.key]) for m in sizes] for c in configs}
    minutes = (time.perf_counter() - began) / 60
    header = [
        f"CPU: {cpu_line()}",
        f"Quota: memory / {_cgroup.MB_PER_VCPU} MB vCPUs per {_cgroup.PERIOD_US} us period (cgroup v1 CFS), "
        f"capped at {len(os.sched_getaffinity(0))} cores here (Lambda: 3 cores at 5,307 MB)",
        f"Load average (1/5/15 min): start {load_start}, end {load_average()}; run {minutes:.1f} min",
        f"Model: {model_name}; seeds' recipe: {seeds_kind}; {args.requests} warm requests per cell "
        "(one question, one SQuAD paragraph), interleaved across configurations",
        f"Prices: {PRICES_SOURCE}, read {PRICES_DATE}; arm64 priced at the x86 duration measured here",
    ]
    report = render(rows, header)
    print(report)
    results.update(rows=rows, header=header)
    (workdir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    chart_path = args.chart or workdir / "power-tuning.png"
    title = f"{model_name.split(' ')[0]} on {cpu_model()}: p50 latency (red) and x86 cost (blue), Lambda's CPU quota"
    chart(rows, chart_path, title)
    log(f"done in {minutes:.1f} min; chart {chart_path}, raw results {workdir}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
