"""Child process of bench/snapstart.py: one fresh sandbox of the function as a given source tree has it.

    python bench/_snapshot_probe.py TREE REQUEST.json --spawned-at WALL_TIME [--hooks]

TREE is a checkout of the repository (any revision: the init comparison runs older trees too), imported the
way the image does (``handler.app`` at import is the init). Prints one JSON line on stdout (the function's own
logs go to stderr), measured as:

* ``startup_s``: interpreter start-up, from the parent's spawn to this script's first line;
* ``init_s``: ``import handler.app``, i.e. Lambda's init: imports, download, load, warm-up;
* ``hooks_s`` (with ``--hooks``, AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): the before-snapshot hooks, run as
  awslambdaric runs them, then the after-restore hooks (``restore_s``); a real snapshot and restore cannot
  happen here, so what follows is the first request of a process in the state the snapshot would hold;
* ``first_ms``, ``second_ms``: the first request (REQUEST.json, a direct invoke) through ``lambda_handler``, and
  the same request again (what a warm environment takes: the first one's excess is its cold-start penalty);
* memory: VmRSS after init and after the hooks (what the snapshot holds), VmHWM (peak) after init and at the end;
  ``tmp_bytes``: bytes under MODEL_DIR after init (what the snapshot's disk holds).
"""

from __future__ import annotations

import time

BEGAN = time.perf_counter()
BEGAN_WALL = time.time()

import argparse  # noqa: E402 - after the clock starts
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import _protocol as protocol  # noqa: E402


def status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("request", type=Path)
    parser.add_argument("--spawned-at", type=float, required=True)
    parser.add_argument("--hooks", action="store_true", help="run the SnapStart hooks after init")
    args = parser.parse_args()
    channel = protocol.open_channel()
    sys.path.insert(0, str(args.tree.resolve()))
    request = json.loads(args.request.read_text(encoding="utf-8"))

    started = time.perf_counter()
    import handler.app as app  # the init

    initialised = time.perf_counter()
    if app.SERVICE.engine is None:
        raise RuntimeError(f"init failed: {app.SERVICE.unavailable}")
    result = {
        "startup_s": protocol.startup_seconds(args.spawned_at, BEGAN_WALL),
        "init_s": initialised - started,
        "rss_init_mib": status_mib("VmRSS"),
        "hwm_init_mib": status_mib("VmHWM"),
        "tmp_bytes": tree_bytes(Path(os.environ["MODEL_DIR"])),
        "store": app.SERVICE.info.get("store", "disk"),
    }
    if args.hooks:
        from awslambdaric import lambda_runtime_hooks_runner as hooks

        before = time.perf_counter()
        hooks.run_before_snapshot()
        result["hooks_s"] = time.perf_counter() - before
        result["rss_snapshot_mib"] = status_mib("VmRSS")
        restored = time.perf_counter()
        hooks.run_after_restore()
        result["restore_s"] = time.perf_counter() - restored
    result["first_ms"] = protocol.invoke(app.lambda_handler, request)
    result["second_ms"] = protocol.invoke(app.lambda_handler, request)
    result["hwm_mib"] = status_mib("VmHWM")
    result["modules"] = {m: m in sys.modules for m in ("torch", "transformers", "aws_xray_sdk", "boto3")}
    protocol.send(channel, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
