"""S3 plumbing: URIs, the client's bounds, and what each S3 error tells the operator."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from handler.store.errors import AccessDenied, BucketNotFound, DownloadFailed, ObjectMissing
from handler.store.s3 import S3Location, client_error, make_client, transport_error


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("s3://b/models/x/", "b", "models/x/"), ("s3://b/models/x", "b", "models/x/"), ("s3://b", "b", "")],
)
def test_uri_parsing(uri: str, bucket: str, prefix: str) -> None:
    location = S3Location.parse(uri)
    assert location == S3Location(bucket, prefix)
    assert location.uri("manifest.json") == f"s3://{bucket}/{prefix}manifest.json"


@pytest.mark.parametrize("uri", ["bucket/x", "https://bucket/x", "s3://", "s3:///x"])
def test_bad_uris_say_what_is_expected(uri: str) -> None:
    with pytest.raises(ValueError, match="expected s3://bucket/prefix/"):
        S3Location.parse(uri)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_standard_endpoint_variables_are_honoured(
    offline: None, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    assert make_client().meta.endpoint_url == "http://127.0.0.1:9"


def test_client_config_bounds_retries_and_timeouts(offline: None) -> None:
    config = make_client().meta.config
    assert config.retries["mode"] == "standard" and config.retries["total_max_attempts"] >= 2
    assert config.connect_timeout <= 10 and config.read_timeout <= 60


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        ("NoSuchBucket", BucketNotFound, "bucket 'b' does not exist"),
        ("AccessDenied", AccessDenied, "s3:GetObject on arn:aws:s3:::b/<prefix>*"),
        ("ExpiredToken", AccessDenied, "ExpiredToken"),
        ("NoSuchKey", ObjectMissing, "python -m qa_tools.publish"),
        ("InternalError", DownloadFailed, "InternalError"),
    ],
)
def test_client_errors_name_the_cause_and_the_fix(code: str, kind: type[Exception], says: str) -> None:
    mapped = client_error(error(code), "s3://b/models/x/model.safetensors")
    assert isinstance(mapped, kind) and says in str(mapped)


def test_transport_errors(offline: None) -> None:
    client = make_client()
    assert isinstance(transport_error(NoCredentialsError(), "s3://b/k", client), AccessDenied)
    disk = transport_error(OSError(28, "No space left on device"), "s3://b/k", client)
    assert isinstance(disk, DownloadFailed) and "local storage" in str(disk)
    network = transport_error(ConnectionResetError("reset"), "s3://b/k", client)
    assert isinstance(network, DownloadFailed) and "VPC endpoint or NAT" in str(network)
