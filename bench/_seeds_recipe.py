"""Child process: the seeds' recipe, i.e. the usual blog post's Lambda handler for a Hugging Face QA model.

    python bench/_seeds_recipe.py REQUESTS.json --spawned-at WALL_TIME --model-uri s3://b/p/ [--cold-only]
        [--emulate] [--extra-site DIR]

The recipe, reproduced phase by phase: import boto3 and ``from transformers import pipeline``; if the model
folder in /tmp is empty, list the S3 prefix and ``download_file`` each object, one after another, with no
verification; ``pipeline("question-answering", model=folder)`` on torch fp32; each request calls the pipeline
with the batch's questions and contexts.

Runs under transformers 4.x (the last line with the question-answering pipeline) when the parent finds such
an interpreter, so it must not import ``handler`` then. ``--extra-site`` appends a site-packages directory
*after* the interpreter's own, to borrow boto3 from the project venv without shadowing transformers or torch.
``--emulate`` is the fallback when no 4.x interpreter exists: transformers 5 has no such pipeline, so the
same imports are paid and our engine stands in for it on torch, one window per forward pass like the
pipeline's default ``batch_size=1``.
"""

from __future__ import annotations

import time

BEGAN = time.perf_counter()
BEGAN_WALL = time.time()

import argparse  # noqa: E402 - after the clock starts: imports are what is measured
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import _protocol as protocol  # noqa: E402

Pipeline = Callable[..., Any]


def import_recipe(emulate: bool) -> Callable[[str], Pipeline]:
    """The recipe's module-level imports; returns its pipeline factory."""
    import boto3  # noqa: F401 - imported for its cost, as the recipe's handler module does
    import transformers
    from transformers import pipeline  # transformers 5 still has it, only without the QA task

    transformers.logging.set_verbosity_error()
    if emulate:
        return emulated_pipeline
    return lambda folder: pipeline("question-answering", model=folder)


def emulated_pipeline(folder: str) -> Pipeline:
    """transformers 5 stand-in: our engine on torch fp32, one window per forward pass, answers as dicts."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from handler.engine import QAEngine

    engine = QAEngine.load(Path(folder), "torch", max_batch_windows=1)

    def qa(question: str | list[str], context: str | list[str]) -> Any:
        single = isinstance(question, str)
        questions = [question] if isinstance(question, str) else question
        contexts = [context] if isinstance(context, str) else context
        answers = [a[0].to_dict() for a in engine.answer(list(zip(questions, contexts, strict=True)))]
        return answers[0] if single else answers

    return qa


def download_model(uri: str, folder: Path) -> tuple[int, int]:
    """The recipe's download: every object under the prefix, in turn, if the folder is empty."""
    import boto3

    if any(folder.iterdir()):
        return 0, 0
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    total = files = 0
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        s3.download_file(bucket, obj["Key"], str(folder / obj["Key"].rsplit("/", 1)[-1]))
        total += obj["Size"]
        files += 1
    return total, files


def make_handler(qa: Pipeline) -> protocol.Handler:
    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        inputs = event.get("inputs", event)
        if isinstance(inputs, dict):
            return qa(question=inputs["question"], context=inputs["context"])
        return qa(question=[i["question"] for i in inputs], context=[i["context"] for i in inputs])

    return lambda_handler


def versions() -> dict[str, str]:
    import torch
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requests")
    parser.add_argument("--spawned-at", type=float, required=True)
    parser.add_argument("--model-uri", required=True, help="s3://bucket/prefix/ holding the model folder")
    parser.add_argument("--cold-only", action="store_true")
    parser.add_argument("--emulate", action="store_true", help="transformers 5: emulate the 4.x pipeline")
    parser.add_argument("--extra-site", help="appended to sys.path (lowest priority), e.g. for boto3")
    args = parser.parse_args()
    if args.extra_site:
        sys.path.append(args.extra_site)
    channel = protocol.open_channel()
    requests = protocol.load_requests(args.requests)

    make_pipeline = import_recipe(args.emulate)
    imported = time.perf_counter()
    folder = Path(os.environ["MODEL_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    size, files = download_model(args.model_uri, folder)
    downloaded = time.perf_counter()
    handler = make_handler(make_pipeline(str(folder)))
    loaded = time.perf_counter()
    first_s = protocol.invoke(handler, requests["first"]) / 1000
    startup = protocol.startup_seconds(args.spawned_at, BEGAN_WALL)
    protocol.send(
        channel,
        {
            "event": "ready",
            "startup_s": startup,
            "imports_s": imported - BEGAN,
            "download_s": downloaded - imported,
            "load_s": loaded - downloaded,
            "first_answer_s": first_s,
            "total_s": startup + (loaded - BEGAN) + first_s,
            "bytes": size,
            "files": files,
            "variant": "seeds-emulated" if args.emulate else "seeds",
            "describe": versions(),
            "rss_init_mib": protocol.peak_rss_mib(),
            "modules": {name: name in sys.modules for name in ("torch", "transformers", "onnxruntime")},
            "python": sys.version.split()[0],
        },
    )
    if not args.cold_only:
        protocol.serve(channel, handler, requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
