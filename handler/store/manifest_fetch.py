"""A published model's manifest read from S3, and when it cannot be read, the diagnosis: a missing manifest, an
empty prefix and a refused read look alike to S3's GetObject, so a prefix-scoped listing tells them apart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handler.store.errors import (
    PUBLISH_COMMAND,
    AccessDenied,
    InvalidManifest,
    ManifestMissing,
    PrefixEmpty,
    UnsafeKey,
)
from handler.store.manifest import MANIFEST_NAME, Manifest, ManifestError, UnsafeKeyError
from handler.store.s3 import S3Location, client_error, error_code, is_denied, is_missing, transport_error

if TYPE_CHECKING:
    from botocore.client import BaseClient


def fetch_manifest(client: BaseClient, location: S3Location) -> bytes:
    """``manifest.json``'s bytes; when it cannot be read, an error that says which of the causes it is."""
    from botocore.exceptions import BotoCoreError, ClientError

    uri, manifest_key = location.uri(MANIFEST_NAME), location.key(MANIFEST_NAME)
    try:
        return client.get_object(Bucket=location.bucket, Key=manifest_key)["Body"].read()
    except ClientError as exc:
        if not (is_missing(exc) or is_denied(exc)):
            raise client_error(exc, uri) from exc
        failure = exc
    except (BotoCoreError, OSError) as exc:
        raise transport_error(exc, uri, client) from exc
    # S3 answers 403, not 404, for a missing key when the caller may not list the whole bucket. The execution
    # role may list under the prefix, so a listing tells a missing manifest from a refused read.
    if is_denied(failure) and _first_key(client, location, manifest_key, uri) == manifest_key:
        raise AccessDenied(
            f"access denied reading {uri} ({error_code(failure)}) although it exists: grant the execution "
            f"role s3:GetObject on arn:aws:s3:::{location.bucket}/{location.prefix}*, and kms:Decrypt on "
            "the bucket's KMS key if it uses one"
        ) from failure
    if _first_key(client, location, location.prefix, uri) is None:
        raise PrefixEmpty(
            f"nothing is published under {location.uri()}; check MODEL_S3_URI or publish the model with "
            f"`{PUBLISH_COMMAND} MODEL {location.uri()}`"
        )
    raise ManifestMissing(
        f"{uri} is missing although {location.uri()} holds objects: a publish was interrupted or the files "
        f"were not uploaded by the publish tooling; re-run `{PUBLISH_COMMAND} MODEL {location.uri()}`"
    )


def _first_key(client: BaseClient, location: S3Location, key_prefix: str, uri: str) -> str | None:
    """The first key starting with ``key_prefix`` (a prefix-scoped ListObjectsV2), None if there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        listing = client.list_objects_v2(Bucket=location.bucket, Prefix=key_prefix, MaxKeys=1)
    except ClientError as exc:
        raise client_error(exc, uri) from exc
    except (BotoCoreError, OSError) as exc:
        raise transport_error(exc, uri, client) from exc
    contents = listing.get("Contents") or [{}]
    return contents[0].get("Key")


def parse_manifest(raw: bytes, location: S3Location | None) -> Manifest:
    """The manifest, or the store's error naming where it came from (``location``; None: a local copy)."""
    where = location.uri(MANIFEST_NAME) if location else MANIFEST_NAME
    try:
        return Manifest.from_json(raw)
    except UnsafeKeyError as exc:
        raise UnsafeKey(f"{where} refused: {exc}; the manifest must list plain relative keys") from None
    except ManifestError as exc:
        raise InvalidManifest(f"{where} is invalid: {exc}; re-publish with `{PUBLISH_COMMAND}`") from None
