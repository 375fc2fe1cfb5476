"""Child process: one fresh Lambda sandbox of OUR function, cold-started through the real handler path.

    python bench/_probe.py REQUESTS.json --spawned-at WALL_TIME [--cold-only]

The environment is the function's (MODEL_S3_URI, MODEL_DIR = an empty directory, QA_BACKEND,
QA_ONNX_PRECISION) plus AWS_* for the local S3. Phases, as Lambda's init would run them:

* imports -- every module ``handler.app`` imports, plus the backend module ``load_backend`` imports lazily;
* download -- ``handler.store`` warming the model from S3 (timed by wrapping the loader's call to it);
* load -- the rest of ``import handler.app``: settings, engine load, the warm-up inference;
* first answer -- the first ``lambda_handler`` call (the first request of REQUESTS.json).

Then it serves the parent's warm requests (see ``_protocol``). For ONNX it also reports whether torch or
transformers were imported anywhere along the way: that image ships neither.
"""

from __future__ import annotations

import time

BEGAN = time.perf_counter()
BEGAN_WALL = time.time()

import argparse  # noqa: E402 - after the clock starts: imports are what is measured
import importlib  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import _protocol as protocol  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, as in the image

# What handler.app imports (its own module body is the init), and what load_backend imports per variant.
APP_IMPORTS = (
    "aws_lambda_powertools.logging.correlation_paths",
    "aws_lambda_powertools.metrics",
    "handler.api.direct",
    "handler.api.events",
    "handler.api.http",
    "handler.observability",
    "handler.runtime.loader",
    "handler.service",
    "handler.settings",
)


def cold_start(first_request: Any) -> tuple[Any, dict[str, Any]]:
    """Imports, warms and loads exactly as Lambda's init would; returns the handler and the timings."""
    for name in APP_IMPORTS:
        importlib.import_module(name)
    from handler.settings import Settings

    variant = Settings.from_env().variant
    importlib.import_module(variant.loader.partition(":")[0])
    imported = time.perf_counter()

    import handler.runtime.loader as loader

    warm = loader.warm_from_settings
    reports: list[tuple[Any, float]] = []

    def timed_warm(settings: Settings) -> Any:
        started = time.perf_counter()
        report = warm(settings)
        reports.append((report, time.perf_counter() - started))
        return report

    loader.warm_from_settings = timed_warm
    app = importlib.import_module("handler.app")
    initialised = time.perf_counter()
    if app.SERVICE.engine is None:
        raise RuntimeError(f"init failed: {app.SERVICE.unavailable}")
    report, download_s = reports[0]
    first_ms = protocol.invoke(app.lambda_handler, first_request)
    timings = {
        "imports_s": imported - BEGAN,
        "download_s": download_s,
        "load_s": initialised - imported - download_s,
        "first_answer_s": first_ms / 1000,
        "bytes": report.bytes,
        "files": report.files,
        "variant": variant.name,
        "describe": app.SERVICE.info,
    }
    return app.lambda_handler, timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests", help="JSON: {'first': payload, workload: [payload, ...]}")
    parser.add_argument("--spawned-at", type=float, required=True, help="the parent's time.time() at spawn")
    parser.add_argument("--cold-only", action="store_true", help="exit after the cold start")
    args = parser.parse_args()
    channel = protocol.open_channel()
    requests = protocol.load_requests(args.requests)
    handler, timings = cold_start(requests["first"])
    startup = protocol.startup_seconds(args.spawned_at, BEGAN_WALL)
    phases = ("imports_s", "download_s", "load_s", "first_answer_s")
    modules = {name: name in sys.modules for name in ("torch", "transformers", "onnxruntime")}
    print(f"[{timings['variant']}] modules imported by the handler process: {modules}", file=sys.stderr)
    protocol.send(
        channel,
        {
            "event": "ready",
            **timings,
            "startup_s": startup,
            "total_s": startup + sum(timings[p] for p in phases),
            "rss_init_mib": protocol.peak_rss_mib(),
            "modules": modules,
            "python": sys.version.split()[0],
        },
    )
    if not args.cold_only:
        protocol.serve(channel, handler, requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
