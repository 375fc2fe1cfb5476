"""What a SnapStart snapshot holds per variant, and init time across source revisions, in fresh processes.

    python bench/snapstart.py                                  # snapshot table, ~5 min on 2 busy vCPUs
    python bench/snapstart.py --revisions fc42b53,HEAD~2,HEAD  # + init time of each revision, one run

Same model and local S3 as bench/coldstart.py (deepset/roberta-base-squad2's config with random weights,
published by ``qa_tools.publish`` to moto on 127.0.0.1). Every figure is the median of ``--rounds`` fresh
processes (``_snapshot_probe``), the configurations interleaved round by round.

* Snapshot table, per variant: plain on-demand init (MODEL_STORE=auto: disk) against a SnapStart init
  (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start: memory store, then the before-snapshot hooks as awslambdaric
  runs them). Reported: init seconds, hooks seconds, RSS after init and after the hooks (the memory the
  snapshot holds), peak RSS, bytes left under MODEL_DIR (the disk the snapshot holds), and the first request
  (one full 384-token window) in that process. A real snapshot and restore cannot run here: on AWS,
  ``Restore Duration`` in the REPORT line is the figure (see docs/cold-starts.md for the commands).
* Revisions table (``--revisions``): init seconds and first request of each git revision's ``handler/``,
  exported with ``git archive``, for one configuration (``--variant``, on-demand); ratios against the first.
  ``REV:NAME=VALUE`` adds an environment variable for that entry (e.g. ``HEAD:MODEL_STORE=memory``).
  Phases come from the function's own log lines where a revision writes them: the download's seconds (in
  its thread once it overlaps the imports) and the load and warm-up after it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _moto  # noqa: E402
import _publish  # noqa: E402
import _workload  # noqa: E402
from _machine import cpu_line, load_average  # noqa: E402
from _roberta_base import build_roberta_base  # noqa: E402
from _shared import SQUAD  # noqa: E402

BUCKET, PREFIX = "bench-models", "ours/"
VARIANTS = {
    "torch": {"QA_BACKEND": "torch"},
    "onnx-fp32": {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "fp32"},
    "onnx-int8": {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int8"},
    "onnx-int8-fast": {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int8-fast"},
}
DEFAULT_VARIANTS = ("torch", "onnx-fp32", "onnx-int8")  # onnx-int8-fast on request (--variants)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def logged_phases(log_path: Path) -> dict[str, float]:
    """Seconds the function's "model warm-up" and "model loaded" log lines report."""
    phases: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if doc.get("message") == "model warm-up":
            phases["download_s"] = doc["seconds"]
        elif doc.get("message") == "model loaded":
            phases.update({k: doc[k] for k in ("store_wait_s", "load_s", "warmup_s") if k in doc})
    return phases


def spawn(tree: Path, request: Path, env: dict[str, str], hooks: bool, log_path: Path) -> dict[str, Any]:
    """One fresh process; its MODEL_DIR is emptied before and removed after."""
    model_dir = Path(env["MODEL_DIR"])
    shutil.rmtree(model_dir, ignore_errors=True)
    command = [sys.executable, str(BENCH / "_snapshot_probe.py"), str(tree), str(request)]
    command += ["--spawned-at", repr(time.time())] + (["--hooks"] if hooks else [])
    with log_path.open("wb") as stderr:
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr, cwd=REPO, check=False)
    shutil.rmtree(model_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed ({proc.returncode}); see {log_path}")
    return {**json.loads(proc.stdout.decode().strip().splitlines()[-1]), **logged_phases(log_path)}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def snapshot_table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    head = (
        "| variant | init | store | init s | hooks s | first request ms | second ms | peak RSS in init MiB "
        "| RSS after init MiB | RSS in snapshot MiB | bytes under MODEL_DIR |"
    )
    lines = [head, "|" + "---|" * 11]
    for variant, modes in results.items():
        for mode, runs in modes.items():
            hooks = f"{median(runs, 'hooks_s'):.2f}" if mode == "snapstart" else "-"
            snap = f"{median(runs, 'rss_snapshot_mib'):.0f}" if mode == "snapstart" else "-"
            lines.append(
                f"| {variant} | {mode} | {runs[0]['store']} | {median(runs, 'init_s'):.2f} | {hooks} "
                f"| {median(runs, 'first_ms'):.0f} | {median(runs, 'second_ms'):.0f} | {median(runs, 'hwm_init_mib'):.0f} "
                f"| {median(runs, 'rss_init_mib'):.0f} | {snap} | {median(runs, 'tmp_bytes') / 2**20:.0f} MiB |"
            )
    return "\n".join(lines)


def revisions_table(results: dict[str, list[dict[str, Any]]]) -> str:
    head = "| revision | init s | ratio | download s | waited for it s | load s | first request ms | ratio | peak RSS MiB |"
    lines = [head, "|" + "---|" * 9]
    base = next(iter(results.values()))

    def phase(runs: list[dict[str, Any]], key: str) -> str:
        return f"{median(runs, key):.2f}" if all(key in r for r in runs) else "-"

    for rev, runs in results.items():
        init, first = median(runs, "init_s"), median(runs, "first_ms")
        lines.append(
            f"| {rev} | {init:.2f} | {init / median(base, 'init_s'):.2f}x | {phase(runs, 'download_s')} "
            f"| {phase(runs, 'store_wait_s')} | {phase(runs, 'load_s')} | {first:.0f} "
            f"| {first / median(base, 'first_ms'):.2f}x | {median(runs, 'hwm_mib'):.0f} |"
        )
    return "\n".join(lines)


def export_revision(rev: str, trees: Path) -> Path:
    """The revision's files (``git archive``), so an older init runs exactly as it was committed."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    )
    target = trees / sha.stdout.strip()
    if not (target / "handler").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", rev, "handler"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-snapstart"))  # noqa: S108
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS)
    )
    parser.add_argument("--revisions", default="", help="comma-separated git revisions to compare init time")
    parser.add_argument("--variant", default="onnx-int8", help="the configuration the revisions run")
    args = parser.parse_args()
    began = time.perf_counter()
    workdir: Path = args.workdir
    (workdir / "logs").mkdir(parents=True, exist_ok=True)

    articles = _workload.load_squad(SQUAD) if SQUAD.is_file() else _workload.generate_articles()
    model_dir = build_roberta_base(workdir / "roberta-base-shaped", _workload.corpus(articles))
    requests = _workload.build(articles, model_dir / "tokenizer.json", {"short": 1, "384": 1, "long": 1})
    request = workdir / "request.json"
    request.write_text(json.dumps(requests["384"][0]["inputs"][0]), encoding="utf-8")  # one full window

    port = _moto.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODEL_", "QA_", "POWERTOOLS_"))},
        **_moto.client_env(port, workdir),
        "POWERTOOLS_METRICS_DISABLED": "1",
        "MODEL_S3_URI": f"s3://{BUCKET}/{PREFIX}",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    server = _moto.start(port)
    lines = [
        f"CPU: {cpu_line()}; Python {platform.python_version()}; {args.rounds} rounds, medians; "
        f"load average (1/5/15 min) at start {load_average()}."
    ]
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        log("publishing the roberta-base-shaped model (torch, ONNX fp32, ONNX int8) to the local S3 ...")
        _publish.publish_ours(model_dir, f"s3://{BUCKET}/{PREFIX}", workdir / "onnx-cache")
        _publish.prime_server(BUCKET)
        variants = [v for v in args.variants.split(",") if v]
        snap: dict[str, dict[str, list[dict[str, Any]]]] = {
            v: {"on-demand": [], "snapstart": []} for v in variants
        }
        revs = [r for r in args.revisions.split(",") if r]
        trees = {rev: export_revision(rev.split(":")[0], workdir / "trees") for rev in revs}
        extra = {rev: dict(kv.split("=", 1) for kv in rev.split(":")[1:]) for rev in revs}
        by_rev: dict[str, list[dict[str, Any]]] = {rev: [] for rev in revs}
        spawned = 0
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds} (load {os.getloadavg()[0]:.1f})")
            jobs = [(v, mode) for v in variants for mode in ("on-demand", "snapstart")]
            jobs += [(rev, "revision") for rev in revs]
            for name, mode in jobs[r % len(jobs) :] + jobs[: r % len(jobs)]:
                spawned += 1
                variant = args.variant if mode == "revision" else name
                child = {**env, **VARIANTS[variant], "MODEL_DIR": str(workdir / "sandbox" / str(spawned))}
                child.update(extra.get(name, {}) if mode == "revision" else {})
                if mode == "snapstart":
                    child["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
                tree = trees[name] if mode == "revision" else REPO
                out = spawn(tree, request, child, mode == "snapstart", workdir / "logs" / f"{spawned}.log")
                (by_rev[name] if mode == "revision" else snap[name][mode]).append(out)
                log(f"  {name} {mode}: init {out['init_s']:.2f} s, first {out['first_ms']:.0f} ms")
    finally:
        server.terminate()
        server.wait()
    if snap:
        lines += ["", snapshot_table(snap)]
    if by_rev:
        lines += [
            "",
            f"Init by revision ({args.variant}, on-demand, MODEL_STORE default):",
            "",
            revisions_table(by_rev),
        ]
    lines += ["", f"Whole run: {(time.perf_counter() - began) / 60:.1f} min."]
    report = "\n".join(lines)
    print(report)
    (workdir / "results.md").write_text(report + "\n", encoding="utf-8")
    (workdir / "results.json").write_text(json.dumps({"snapshot": snap, "revisions": by_rev}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
