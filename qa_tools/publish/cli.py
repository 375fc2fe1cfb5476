"""Publish a model for the function: ``python -m qa_tools.publish SOURCE s3://bucket/prefix/`` (or ``DIR``).

The command line of ``qa_tools.publish``: arguments, one JSON summary on stdout, an exit status (2 for a bad
source or destination, 1 for an S3 failure)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from handler import variants as registry
from handler.store import ManifestError, S3Location
from qa_tools.fidelity import gate
from qa_tools.publish.log import log
from qa_tools.publish.pipeline import publish


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m qa_tools.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="local model directory or Hugging Face model id (needs internet)")
    parser.add_argument(
        "destination",
        help="s3://bucket/prefix/, or a local directory (for MODEL_LOCAL_PATH or the baked image)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(registry.PUBLISHED_BY_DEFAULT),
        help=f"comma-separated backend variants to publish, of {','.join(registry.NAMES)} "
        f"(default: {','.join(registry.PUBLISHED_BY_DEFAULT)})",
    )
    parser.add_argument(
        "--min-fidelity",
        type=_share,
        default=gate.DEFAULT_THRESHOLD,
        help="least share of probe questions a lossy variant (int8) must answer with its reference's span "
        f"(default: {gate.DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--allow-lossy",
        action="store_true",
        help="publish a lossy variant below --min-fidelity anyway (the manifest and /health say so)",
    )
    parser.add_argument("--name", help="model name in the manifest (default: the Hub id or directory name)")
    parser.add_argument(
        "--revision", help="Hub revision to fetch, or the one to record (default: commit or 'local')"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        result = publish(
            args.source, args.destination, variants=variants, name=args.name, revision=args.revision,
            progress=not args.no_progress, min_fidelity=args.min_fidelity, allow_lossy=args.allow_lossy,
        )  # fmt: skip
    except (ValueError, ManifestError, OSError) as exc:
        log(f"error: {exc}")
        return 2
    except (ClientError, BotoCoreError) as exc:
        log(f"error: S3: {exc}")
        return 1
    where = args.destination if "://" not in args.destination else S3Location.parse(args.destination).uri()
    summary = {
        "destination": where,
        "model": result.manifest.name,
        "revision": result.manifest.revision,
        "variants": list(result.manifest.variants),
        "fidelity": dict(result.manifest.fidelity),
        "uploaded": list(result.uploaded),
        "skipped": list(result.skipped),
        "manifest": "uploaded" if result.manifest_uploaded else "unchanged",
    }
    print(json.dumps(summary, indent=2))
    return 0
