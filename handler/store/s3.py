"""S3 plumbing shared by the model store and the publish tooling: ``s3://`` URIs, one client factory, and what
an S3 error means for the operator.

The client never gets an explicit ``endpoint_url``: boto3 reads ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
itself, so the same code talks to AWS or to a local S3. Credentials come only from boto3's standard chain
(the execution role on Lambda). boto3 is imported when a client is made, not with this module: settings
parse URIs at init without paying for it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handler.store.errors import (
    PUBLISH_COMMAND,
    AccessDenied,
    BucketNotFound,
    DownloadFailed,
    ModelStoreError,
    ObjectMissing,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

# Standard mode retries throttling (503 SlowDown), 5xx and connection errors with exponential backoff and
# jitter; adaptive mode's client-side rate limiter only helps sustained throttling, not a one-off warm-up.
RETRY_MODE = "standard"
MAX_ATTEMPTS = 5
# Bounded so a black-holed connection fails the init instead of hanging until Lambda's init timeout.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
_MADE: weakref.WeakSet[BaseClient] = weakref.WeakSet()
_DENIED = frozenset(
    {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
     "InvalidToken"}
)  # fmt: skip
_MISSING = frozenset({"NoSuchKey", "404"})


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (``""`` or ending in ``/``) under which a model is published."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """Parse ``s3://bucket/prefix/``; the trailing slash is optional. Raises ValueError."""
        scheme, sep, rest = uri.strip().partition("://")
        bucket, _, prefix = rest.partition("/")
        if not sep or scheme != "s3" or not bucket:
            raise ValueError(f"expected s3://bucket/prefix/, got {uri!r}")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def uri(self, relative: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"


def make_client(
    *,
    max_pool_connections: int = 16,
    max_attempts: int = MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> BaseClient:
    """An S3 client with bounded timeouts and retries; the pool is sized for concurrent ranged GETs."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": RETRY_MODE, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )
    # boto3's default session: creating clients from it is ~10x cheaper than from a new session each time.
    client = boto3.client("s3", config=config)
    _MADE.add(client)
    return client


def clients_alive() -> int:
    """Clients ``make_client`` made that are still referenced: each holds a connection pool and credentials
    (under SnapStart none may reach the snapshot; count after ``gc.collect``, clients hold cycles)."""
    return len(_MADE)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_denied(exc: ClientError) -> bool:
    return error_code(exc) in _DENIED


def is_missing(exc: ClientError) -> bool:
    return error_code(exc) in _MISSING


def client_error(exc: ClientError, uri: str) -> ModelStoreError:
    code = error_code(exc)
    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    if code == "NoSuchBucket":
        return BucketNotFound(f"bucket {bucket!r} does not exist (reading {uri}); check MODEL_S3_URI")
    if code in _DENIED:
        return AccessDenied(
            f"access denied reading {uri} ({code}); grant the execution role s3:GetObject on "
            f"arn:aws:s3:::{bucket}/<prefix>* and s3:ListBucket on arn:aws:s3:::{bucket}"
        )
    if code in _MISSING:
        return ObjectMissing(f"{uri} is listed in the manifest but missing; re-run `{PUBLISH_COMMAND}`")
    return DownloadFailed(f"S3 error {code or 'unknown'} reading {uri}: {exc}")


def transport_error(exc: BaseException, uri: str, client: BaseClient) -> ModelStoreError:
    from botocore.exceptions import NoCredentialsError
    from s3transfer.exceptions import RetriesExceededError

    if isinstance(exc, NoCredentialsError):
        return AccessDenied(f"no AWS credentials to read {uri}; on Lambda the execution role provides them")
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return DownloadFailed(f"cannot write the model to local storage while reading {uri}: {exc}")
    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        exc = exc.last_exception  # "Max Retries Exceeded" alone hides what kept breaking the download
    return DownloadFailed(
        f"reading {uri} from {client.meta.endpoint_url} failed after retries: {exc}; check network access "
        "to S3 (VPC endpoint or NAT) and AWS_ENDPOINT_URL_S3"
    )
