"""S3 plumbing shared by the model store and the publish CLI: ``s3://`` URIs and one boto3 client factory.

The client never gets an explicit ``endpoint_url``: boto3 reads ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
itself, so the same code talks to AWS or to a local S3. Credentials come only from boto3's standard chain
(the execution role on Lambda).
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.client import BaseClient
from botocore.config import Config

# Standard mode retries throttling (503 SlowDown), 5xx and connection errors with exponential backoff and
# jitter; adaptive mode's client-side rate limiter only helps sustained throttling, not a one-off warm-up.
RETRY_MODE = "standard"
MAX_ATTEMPTS = 5
# Bounded so a black-holed connection fails the init instead of hanging until Lambda's init timeout.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


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
    config = Config(
        retries={"mode": RETRY_MODE, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )
    # boto3's default session: creating clients from it is ~10x cheaper than from a new session each time.
    return boto3.client("s3", config=config)
