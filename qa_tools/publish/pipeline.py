"""``publish``: the whole publish in order -- the source resolved and normalised, the variants built and the lossy
ones gated, every file hashed into the manifest, then the upload (or the local write), manifest last."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from botocore.client import BaseClient

from handler import variants as registry
from handler.store import Manifest, S3Location, make_client
from qa_tools.fidelity import gate
from qa_tools.publish.build import build
from qa_tools.publish.fidelity_check import check_fidelity
from qa_tools.publish.local import local_destination, write_local
from qa_tools.publish.log import log
from qa_tools.publish.result import PublishResult
from qa_tools.publish.source import is_normalised, normalise, resolve_source, select_files
from qa_tools.publish.upload import CONCURRENCY, upload


def publish(
    source: str,
    destination: str,
    *,
    variants: Sequence[str] = registry.PUBLISHED_BY_DEFAULT,
    name: str | None = None,
    revision: str | None = None,
    client: BaseClient | None = None,
    progress: bool = True,
    min_fidelity: float = gate.DEFAULT_THRESHOLD,
    allow_lossy: bool = False,
) -> PublishResult:
    """Normalise ``source``, export the requested variants, and publish them with a manifest to
    ``destination``: ``s3://bucket/prefix/``, or a local directory."""
    unknown = set(variants) - set(registry.NAMES)
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {','.join(registry.NAMES)}, got {variants}")
    target = (
        S3Location.parse(destination)
        if "://" in destination
        else local_destination(Path(destination).expanduser())
    )
    model_dir, default_name, default_revision = resolve_source(source, revision)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        staging = Path(tmp)
        if not is_normalised(model_dir):
            model_dir = normalise(model_dir, staging / "model")
        paths = select_files(model_dir, variants)
        paths.update(build(model_dir, staging / "built", variants))
        fidelity, golden = check_fidelity(
            model_dir, staging, variants, min_fidelity, allow_lossy=allow_lossy, show_progress=progress
        )
        log(f"hashing {len(paths)} files ...")
        manifest = Manifest.build(
            name or default_name,
            revision or default_revision,
            paths,
            {n: f.to_manifest() for n, f in fidelity.items()},
            golden,
        )
        if isinstance(target, Path):
            return write_local(target, manifest, paths)
        client = client or make_client(max_pool_connections=CONCURRENCY + 2)
        return upload(client, target, manifest, paths, progress=progress)
