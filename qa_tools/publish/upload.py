"""Upload to S3: concurrent, with a progress bar; a file whose object already has the same size and sha256 is
skipped, and the manifest goes up last, so a warm-up never sees a half-published model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber
from tqdm import tqdm

from handler.store import MANIFEST_NAME, FileEntry, Manifest, S3Location
from qa_tools.publish.log import log
from qa_tools.publish.result import PublishResult

# Object metadata carrying our hash: lets a re-publish skip identical objects without downloading them.
SHA256_METADATA = "sha256"

CONCURRENCY = 8


class _Progress(BaseSubscriber):
    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._bar.update(bytes_transferred)


def _already_there(client: BaseClient, location: S3Location, entry: FileEntry) -> bool:
    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key(entry.key))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    same_hash = head.get("Metadata", {}).get(SHA256_METADATA) == entry.sha256
    return head["ContentLength"] == entry.size and same_hash


def _current_manifest(client: BaseClient, location: S3Location) -> bytes | None:
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_NAME))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise


def upload(
    client: BaseClient, location: S3Location, manifest: Manifest, paths: dict[str, Path], *, progress: bool
) -> PublishResult:
    todo = [e for e in manifest.files if not _already_there(client, location, e)]
    skipped = tuple(e.key for e in manifest.files if e not in todo)
    for key in skipped:
        log(f"  unchanged, skipped: {key}")
    config = TransferConfig(max_concurrency=CONCURRENCY, preferred_transfer_client="classic")
    total = sum(e.size for e in todo)
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload", file=sys.stderr,
               disable=None if progress else True)  # fmt: skip
    with bar, create_transfer_manager(client, config) as manager:
        futures = [
            manager.upload(
                str(paths[e.key]), location.bucket, location.key(e.key),
                extra_args={"Metadata": {SHA256_METADATA: e.sha256}}, subscribers=[_Progress(bar)],
            )
            for e in todo
        ]  # fmt: skip
        for future in futures:
            future.result()
    body = manifest.to_json()
    manifest_uploaded = _current_manifest(client, location) != body
    if manifest_uploaded:  # last: the new model becomes visible only now, complete
        client.put_object(
            Bucket=location.bucket, Key=location.key(MANIFEST_NAME), Body=body,
            ContentType="application/json", CacheControl="no-cache",
        )  # fmt: skip
    return PublishResult(
        manifest=manifest,
        uploaded=tuple(e.key for e in todo),
        skipped=skipped,
        manifest_uploaded=manifest_uploaded,
    )
