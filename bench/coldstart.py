"""Cold start and warm latency of the function, against the seeds' recipe, each sandbox a fresh process.

    python bench/coldstart.py --seeds-python /work/venv457/bin/python     # ~10 min on 2 busy vCPUs

Builds a model with deepset/roberta-base-squad2's exact config (random weights, ``_roberta_base``), starts moto's
S3 server on 127.0.0.1 (``_moto``), publishes the model twice -- the seeds' way (the save_pretrained folder)
and ours (``qa_tools.publish``: every registry variant under one prefix with a manifest) -- and measures six
configurations (``CONFIGS``): (1) the seeds' recipe (``_seeds_recipe``: transformers 4.x pipeline, sequential
``download_file``; emulated on transformers 5 without ``--seeds-python``), (2) our torch backend, (3) our ONNX
fp32, (4) our ONNX int8 (the faithful recipe), (5) our ONNX int8-fast (dynamic quantization, opt-in), (6) our
ONNX int8-qgemm, the last five through the real ``handler.app`` (``_probe``). The default is the int8 recipe this
CPU gets under ``QA_ONNX_PRECISION=auto`` (``_report.DEFAULT_CONFIG``): (6) with VNNI or AMX, else (4). The
header names the CPU and its int8 flags (``_machine``): int8 ratios depend on them.

* Cold start, ``--rounds`` fresh processes per configuration with an empty MODEL_DIR: imports, download,
  load, first answer, total; the median is reported.
* Warm latency: after its first cold start, each configuration's process stays up and the parent sends it
  requests (``_workload``: batches of 8 questions over SQuAD paragraphs, full 384-token windows, ~1,000-token
  documents) through ``lambda_handler``, interleaving the configurations request by request.
* Peak RSS (VmHWM) and bytes downloaded; then fidelity (``_fidelity``): both int8 variants vs fp32 vs torch
  answers on a trained model (``bench/fidelity.py`` is the fuller int8 recipe table).

Prints the tables (each figure with its ratio to the seeds' recipe) and the verdict on each target; writes
``results.json`` and ``results.md`` to the work directory. Only 127.0.0.1 is ever contacted. The seeds' recipe
is the floor: when the default configuration is slower than it on any figure of the warm table, a MISSED line
says where and the exit code is 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import _fidelity  # noqa: E402
import _moto  # noqa: E402
import _publish  # noqa: E402
import _report  # noqa: E402
import _workload  # noqa: E402
from _machine import load_average, machine  # noqa: E402
from _roberta_base import build_roberta_base  # noqa: E402
from _shared import MINILM, SQUAD, XQUAD  # noqa: E402

# boto3 and its pure-Python dependencies, lent to the seeds' interpreter when it lacks them.
BOTO3_DISTRIBUTION = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six")


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    env: dict[str, str]


CONFIGS = (
    Config("seeds", "(1) seeds' recipe", {}),
    Config("torch", "(2) torch", {"QA_BACKEND": "torch"}),
    Config("onnx-fp32", "(3) ONNX fp32", {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "fp32"}),
    Config("onnx-int8", "(4) ONNX int8", {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int8"}),
    Config("onnx-int8-fast", "(5) ONNX int8-fast", {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int8-fast"}),
    Config(
        "onnx-int8-qgemm", "(6) ONNX int8-qgemm", {"QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int8-qgemm"}
    ),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- seeds' interpreter -----------------------------------------------------------------------------
def seeds_interpreter(python: str | None, workdir: Path) -> tuple[list[str], str]:
    """The command that runs the seeds' recipe, and what it is: the real 4.x pipeline when ``python`` has
    transformers 4, else the emulation on this interpreter's transformers 5."""
    script = [str(BENCH / "_seeds_recipe.py")]
    if python:
        probe = [python, "-c", "import transformers; print(transformers.__version__)"]
        found = subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()
        if found.startswith("4."):
            return [
                python,
                *script,
                "--extra-site",
                str(_boto3_site(workdir)),
            ], f"transformers {found} pipeline"
        log(f"{python} has no transformers 4.x ({found or 'not importable'}): emulating the recipe")
    return [sys.executable, *script, "--emulate"], "emulated: transformers 5 imports + our engine on torch"


def _boto3_site(workdir: Path) -> Path:
    """Links to this venv's boto3 and its pure-Python dependencies, for the seeds' interpreter's sys.path."""
    site = workdir / "seeds-site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for name in BOTO3_DISTRIBUTION:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        (site / source.name).symlink_to(source)
    return site


# --- child processes ----------------------------------------------------------------------------------
class Sandbox:
    """One child process: a fresh Lambda sandbox of one configuration."""

    def __init__(self, config: Config, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.config = config
        self.model_dir = Path(env["MODEL_DIR"])
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [*command, "--spawned-at", repr(time.time())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, cwd=REPO,
        )  # fmt: skip

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RuntimeError(f"{self.config.key} exited ({self.process.returncode}); see {self.log_path}")
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self._log.close()
        shutil.rmtree(self.model_dir, ignore_errors=True)  # each cold start downloads ~0.1-0.5 GB


class Runner:
    def __init__(
        self, workdir: Path, requests_path: Path, seeds_command: list[str], child_env: dict[str, str]
    ) -> None:
        self.workdir = workdir
        self.requests_path = requests_path
        self.seeds_command = seeds_command
        self.child_env = child_env
        self.spawned = 0

    def spawn(self, config: Config, *, cold_only: bool) -> Sandbox:
        self.spawned += 1
        model_dir = self.workdir / "sandboxes" / f"{config.key}-{self.spawned}"
        shutil.rmtree(model_dir, ignore_errors=True)
        model_dir.mkdir(parents=True)
        env = {**os.environ, **self.child_env, **config.env, "MODEL_DIR": str(model_dir)}
        if config.key == _report.SEEDS:
            command = [*self.seeds_command, "--model-uri", _publish.SEEDS_URI]
        else:
            command = [sys.executable, str(BENCH / "_probe.py")]
            env["MODEL_S3_URI"] = _publish.OURS_URI
        command += [str(self.requests_path)] + (["--cold-only"] if cold_only else [])
        return Sandbox(config, command, env, self.workdir / "logs" / f"{config.key}-{self.spawned}.log")

    def cold_start(self, config: Config, *, keep: bool) -> tuple[dict[str, Any], Sandbox | None]:
        sandbox = self.spawn(config, cold_only=not keep)
        ready = sandbox.receive()
        log(f"  {config.key}: first answer after {ready['total_s']:.1f} s "
            f"(imports {ready['startup_s'] + ready['imports_s']:.1f}, download {ready['download_s']:.1f}, "
            f"load {ready['load_s']:.1f}, answer {ready['first_answer_s']:.2f}); rss {ready['rss_init_mib']:.0f} MiB")  # fmt: skip
        if keep:
            return ready, sandbox
        sandbox.close()
        return ready, None


def prime_page_cache(seeds_command: list[str]) -> None:
    """Imports every library once, untimed, so no configuration pays for reading them from disk first."""
    ours = "import handler.api.http, handler.runtime.loader, handler.backends.torch_backend, handler.backends.onnx_backend"
    subprocess.run([sys.executable, "-c", ours], cwd=REPO, check=True, capture_output=True)
    seeds = "import sys; sys.path.append(sys.argv[1]); import boto3; from transformers import pipeline; import torch"
    extra = seeds_command[seeds_command.index("--extra-site") + 1] if "--extra-site" in seeds_command else ""
    subprocess.run([seeds_command[0], "-c", seeds, extra], cwd=REPO, check=True, capture_output=True)


def rotated(configs: tuple[Config, ...], k: int) -> tuple[Config, ...]:
    """The k-th rotation: no configuration always goes first (right after another one's burst of work)."""
    k %= len(configs)
    return configs[k:] + configs[:k]


def measure(runner: Runner, rounds: int, counts: dict[str, int]) -> dict[str, Any]:
    """Cold starts in ``rounds`` rounds (the first round's sandboxes stay up), then the interleaved warm
    requests, then each sandbox's peak RSS."""
    configs: dict[str, Any] = {c.key: {"cold": [], "latency_ms": {w: [] for w in counts}} for c in CONFIGS}
    alive: dict[str, Sandbox] = {}
    try:
        for r in range(rounds):
            log(f"cold starts, round {r + 1}/{rounds} (load {load_average()})")
            for config in rotated(CONFIGS, r):
                ready, sandbox = runner.cold_start(config, keep=r == 0)
                configs[config.key]["cold"].append(ready)
                if sandbox is not None:
                    alive[config.key] = sandbox
        for workload, count in counts.items():
            log(f"warm '{workload}': {count} requests per configuration, interleaved (load {load_average()})")
            for i in range(count):
                for config in rotated(CONFIGS, i):
                    reply = alive[config.key].ask({"workload": workload, "index": i})
                    configs[config.key]["latency_ms"][workload].append(reply["ms"])
        for key, sandbox in alive.items():
            configs[key]["peak_rss_mib"] = sandbox.ask({"done": True})["peak_rss_mib"]
    finally:
        for sandbox in alive.values():
            if sandbox.process.poll() is None:
                sandbox.process.kill()
            sandbox.close()
    return configs


# --- fidelity -----------------------------------------------------------------------------------------
def fidelity(workdir: Path, articles: list[_workload.Article], limit: int) -> dict[str, Any]:
    with _publish.cached_export(workdir / "onnx-cache"):
        if (MINILM / "model.safetensors").is_file():
            model_dir = _fidelity.prepare(MINILM, workdir / "fidelity-model")
            data = XQUAD if XQUAD.is_file() else SQUAD
            items = _fidelity.load_items(data, limit)
            model, source, data_name = MINILM.name, "trained", data.name
        else:
            from qa_tools.tiny_models import build_planted_model

            planted = build_planted_model(workdir / "planted-roberta", "roberta")
            model_dir = _fidelity.prepare(planted.path, workdir / "fidelity-model")
            contexts = [p.context for a in articles for p in a.paragraphs]
            items = _fidelity.planted_items(contexts, planted.start_word, planted.end_word, limit)
            model, source, data_name = (
                "planted-answer RoBERTa (qa_tools.tiny_models)",
                "planted",
                "benchmark contexts",
            )
    log(f"fidelity: {len(items)} questions on {model} with {', '.join(_fidelity.BACKENDS)}")
    return {"model": model, "source": source, "data": data_name, **_fidelity.measure(model_dir, items)}


# --- main ---------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-bench-coldstart"),  # noqa: S108 - scratch
                        help="model, export cache, logs and results (the model and ONNX export are reused)")  # fmt: skip
    parser.add_argument(
        "--seeds-python", type=os.path.abspath,  # children run in other working directories
        help="an interpreter with transformers 4.x for the real seeds' recipe (scripts/make-reference-venv.sh)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="cold starts per configuration (median)")
    parser.add_argument("--short", type=int, default=10, help="warm requests of 8 SQuAD paragraphs")
    parser.add_argument("--window", type=int, default=5, help="warm requests of 8 full 384-token windows")
    parser.add_argument("--long", type=int, default=2, help="warm requests of 8 questions on ~1,000 tokens")
    parser.add_argument(
        "--fidelity", type=int, default=400, help="questions for the int8 fidelity check (0: skip)"
    )
    parser.add_argument(
        "--max-batch-windows",
        type=int,
        help="MAX_BATCH_WINDOWS for our configurations (default: the function's)",
    )
    parser.add_argument(
        "--stock-moto", action="store_true", help="moto unpatched (whole-object copy per GET)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    workdir: Path = args.workdir
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "load_average": {"start": load_average()}}
    log(f"load average (1/5/15 min) at start: {results['load_average']['start']} on {os.cpu_count()} CPUs")

    if SQUAD.is_file():
        articles, text_source = _workload.load_squad(SQUAD), f"SQuAD 2.0 dev ({SQUAD.name})"
    else:
        articles, text_source = _workload.generate_articles(), "generated text (no SQuAD file found)"
    log(f"model: roberta-base-squad2 config, random weights, tokenizer trained on {text_source}")
    model_dir = build_roberta_base(workdir / "roberta-base-shaped", _workload.corpus(articles))
    counts = {"short": args.short, "384": args.window, "long": args.long}
    requests = _workload.build(articles, model_dir / "tokenizer.json", counts)
    requests_path = workdir / "requests.json"
    requests_path.write_text(json.dumps(requests), encoding="utf-8")
    results["workloads"] = requests["workloads"]
    results["text"] = text_source

    seeds_command, seeds_kind = seeds_interpreter(args.seeds_python, workdir)
    results["seeds_recipe"] = seeds_kind
    port = _moto.free_port()
    child_env = {
        "AWS_ENDPOINT_URL_S3": f"http://{_moto.LOOPBACK}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-config"),
        "POWERTOOLS_METRICS_DISABLED": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }
    if args.max_batch_windows:  # the seeds' recipe ignores it: the pipeline runs one window at a time
        child_env["MAX_BATCH_WINDOWS"] = str(args.max_batch_windows)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        os.environ.pop(name, None)
    os.environ.update(child_env)
    server = _moto.start(port, stock=args.stock_moto)
    try:
        log(f"publishing to the local S3 (moto{' stock' if args.stock_moto else ', O(range) GETs'}) ...")
        _publish.stage(model_dir, workdir / "onnx-cache")
        prime_page_cache(seeds_command)
        results["setup_s"] = time.perf_counter() - began
        log(f"setup done in {results['setup_s']:.0f} s; seeds' recipe: {seeds_kind}")
        runner = Runner(workdir, requests_path, seeds_command, child_env)
        results["configs"] = measure(runner, args.rounds, counts)
        results["load_average"]["after_measurements"] = load_average()
    finally:
        server.terminate()
        server.wait()

    results["describe"] = {k: c["cold"][0]["describe"] for k, c in results["configs"].items()}
    results["modules"] = {k: c["cold"][0]["modules"] for k, c in results["configs"].items()}
    if args.fidelity:
        results["fidelity"] = fidelity(workdir, articles, args.fidelity)
    results["load_average"]["end"] = load_average()
    results["seconds"] = time.perf_counter() - began
    report = render(results, args)
    print(report)
    (workdir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (workdir / "results.md").write_text(report + "\n", encoding="utf-8")
    log(f"done in {results['seconds'] / 60:.1f} min; results in {workdir}/results.{{md,json}}")
    if _report.exit_code(results):  # the floor: the default slower than the seeds' recipe on a warm figure
        log(_report.floor_verdict(results))
    return _report.exit_code(results)


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    labels = {c.key: c.label for c in CONFIGS}
    workloads = "; ".join(
        f"`{name}` = {w['description']}, median context {w['median_context_tokens']} tokens, N = {w['requests']}"
        for name, w in results["workloads"].items()
    )
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    seeds_versions = results["describe"]["seeds"]
    onnx_modules = results["modules"]["onnx-int8"]
    lines = [
        f"Machine: {m['cpu_line']}; {m['memory_gib']} GiB, {m['os']}, Python {m['python']}; {versions}.",
        f"Seeds' recipe: {results['seeds_recipe']} (transformers {seeds_versions['transformers']}, torch {seeds_versions['torch']}).",
        f"Load average (1/5/15 min): start {results['load_average']['start']}, after the measurements "
        f"{results['load_average']['after_measurements']}, end {results['load_average']['end']}.",
        f"Cold start: median of {args.rounds} fresh processes per configuration. Warm: batches of 8 questions "
        f"through lambda_handler (direct invoke), {workloads}. Text: {results['text']}. "
        f"MAX_BATCH_WINDOWS: {args.max_batch_windows or 'default'}.",
        f"ONNX int8 process imported torch: {onnx_modules['torch']}, transformers: {onnx_modules['transformers']}.",
        "",
        _report.table(results, labels),
        "",
        "Targets:",
        *_report.verdicts(results),
    ]
    if "fidelity" in results:
        lines += ["", "Fidelity:", "", _report.fidelity_table(results["fidelity"])]
    lines += ["", f"Whole run: {results['seconds'] / 60:.1f} min (setup {results['setup_s']:.0f} s)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
