"""Fault injection on the model store: a real local S3 (moto on 127.0.0.1) behind an HTTP proxy that breaks
chosen responses, and the real filesystem (a private tmpfs filled up mid-download).

Invariant (issue 7): either the model is served after retries, or init fails with a clear message; a partial
or unverified model is never loaded and never left in MODEL_DIR. tests/integration/test_store.py covers the
single faults (one cut connection, two throttles, a replaced object, traversal keys at the store, low space at
preflight); this module covers bursts, budgets, the filesystem and the whole init path. Every fault injected is counted
and the totals are printed at the end of the module.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Literal
from urllib.parse import urlsplit

import botocore.endpoint
import pytest
from boto3.s3.transfer import TransferConfig

from handler.observability import logger as app_logger
from handler.store.download import default_transfer_config
from handler.store.errors import DownloadFailed, HashMismatch, InsufficientStorage, UnsafeKey
from handler.store.manifest import MANIFEST_NAME
from handler.store.s3 import MAX_ATTEMPTS
from handler.store.warm import warm_model
from qa_tools.publish import publish
from qa_tools.tiny_models import PlantedModel
from tests.fixtures import ROOT
from tests.fixtures.events import http_body, invoke, load, rest_predict
from tests.fixtures.s3 import LOOPBACK, Bucket, MotoS3

PREFIX = "models/planted/"
WEIGHTS = "model.safetensors"
# The budgets are the production ones: botocore's attempts per request (throttling, 5xx, failed connects)
# and s3transfer's attempts per GET whose body breaks off while streaming.
REQUEST_ATTEMPTS = MAX_ATTEMPTS
STREAM_ATTEMPTS = default_transfer_config().num_download_attempts
TRANSFERS = {
    "single": TransferConfig(),
    "ranged": TransferConfig(multipart_threshold=16 * 1024, multipart_chunksize=16 * 1024, max_concurrency=4),
}
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)

FAULTS: Counter[str] = Counter()  # kind -> faults injected in this module


# --- an HTTP proxy that breaks planned responses --------------------------------------------------------
FaultKind = Literal["slowdown", "truncate", "reset"]


@dataclass(frozen=True)
class Fault:
    """``slowdown``: S3's 503 instead of the object. ``truncate``/``reset``: the real response headers
    (full Content-Length), ``keep`` of the body, then a clean close (FIN) or a connection reset (RST)."""

    kind: FaultKind
    keep: float = 0.5


class FaultProxy:
    """Loopback HTTP proxy in front of moto. Requests pass through unchanged unless a fault is planned for
    the object they read; every request is recorded, so a test can also count what a warm-up fetched."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.injected: list[tuple[FaultKind, str]] = []
        self._plan: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self._server = _Server((LOOPBACK, 0), _ProxyHandler)
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def inject(self, key: str, fault: Fault, times: int) -> None:
        """The next ``times`` GETs of ``key`` (any prefix, any range) get ``fault``."""
        with self._lock:
            self._plan.setdefault(key, deque()).extend([fault] * times)

    def gets(self, key: str) -> int:
        return sum(1 for method, path in self.requests if method == "GET" and path.endswith(f"/{key}"))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, path: str) -> Fault | None:
        """Logs a request; returns the fault planned for it, if any."""
        with self._lock:
            self.requests.append((method, path))
            if method != "GET":
                return None
            for key, planned in self._plan.items():
                if path.endswith(f"/{key}") and planned:
                    fault = planned.popleft()
                    self.injected.append((fault.kind, path))
                    FAULTS[fault.kind] += 1
                    return fault
            return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
    server: _Server

    def do_GET(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = proxy.record(self.command, urlsplit(self.path).path)
        if fault is not None and fault.kind == "slowdown":
            self._reply(503, [("Content-Type", "application/xml")], SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=10)
        try:
            upstream.request(self.command, self.path, body or None, headers=dict(self.headers.items()))
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        hop = ("connection", "content-length", "transfer-encoding", "keep-alive")
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in hop]
        if fault is None:
            length = int(response.getheader("Content-Length") or 0) if self.command == "HEAD" else None
            self._reply(response.status, headers, data, length)
            return
        # The headers promise the whole body; the connection ends after part of it.
        self._reply(response.status, headers, data[: int(len(data) * fault.keep)], length=len(data))
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.wfile.flush()
        for stream in (self.rfile, self.wfile):  # the socket closes only once its file objects are closed
            stream.close()
        self.rfile, self.wfile = io.BytesIO(), io.BytesIO()  # http.server flushes and closes them afterwards
        self.connection.close()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _reply(
        self, status: int, headers: list[tuple[str, str]], data: bytes, length: int | None = None
    ) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown the test output."""


# --- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def fault_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    """Prints how many faults of each kind this module injected (the figures in docs/reliability.md)."""
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(FAULTS.items()))
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even when pytest captures output
            reporter.write_line(f"\nstore faults injected: {sum(FAULTS.values())} ({summary})")


@pytest.fixture
def published(s3_bucket: Bucket, planted_roberta: PlantedModel) -> str:
    publish(str(planted_roberta.path), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)
    return s3_bucket.uri(PREFIX)


@pytest.fixture
def proxy(published: str, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """After publishing (directly to moto), every client the code under test creates goes through the proxy."""
    server = FaultProxy((moto_s3.host, moto_s3.port))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    yield server
    server.close()


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore's retry handler asks for, recorded instead of slept (it sleeps in one place)."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=delays.append))
    return delays


@pytest.fixture
def app_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The handler's structured log lines, as CloudWatch would receive them."""
    handler = app_logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    handler.setStream(previous)


# --- helpers --------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_entries(cache_root: Path) -> list[str]:
    return sorted(p.name for p in cache_root.iterdir() if p.name != ".lock") if cache_root.exists() else []


def assert_serves(app: ModuleType, model: PlantedModel) -> None:
    """A request gets the planted answer: the model that was loaded is the one that was published."""
    context = f"The old {model.start_word} bridge {model.end_word} crosses the river."
    response = invoke(app, rest_predict({"question": "What crosses the river?", "context": context}))
    assert response["statusCode"] == 200, response["body"]
    assert http_body(response)["answer"] == f"{model.start_word} bridge {model.end_word}"


def assert_unavailable(
    app: ModuleType, logs: list[dict[str, Any]], error: type[Exception], *words: str
) -> str:
    """Init survived, every request is a 503 naming the error class, and the log says what and where."""
    response = invoke(app, rest_predict({"question": "q", "context": "c"}))
    assert response["statusCode"] == 503
    assert error.__name__ in http_body(response)["error"]["message"]
    assert invoke(app, load("rest-health.json"))["statusCode"] == 503
    [failure] = [line for line in logs if line.get("message") == "model failed to load"]
    assert failure["error_type"] == error.__name__
    for word in words:
        assert word in failure["exception"]
    return str(failure["exception"])


def published_keys(bucket: Bucket) -> list[str]:
    """The torch variant's files, as the published manifest lists them."""
    return [f["key"] for f in published_manifest(bucket)["files"] if "torch" in f["variants"]]


def published_manifest(bucket: Bucket) -> dict[str, Any]:
    return json.loads(bucket.client.get_object(Bucket=bucket.name, Key=PREFIX + MANIFEST_NAME)["Body"].read())


# --- truncated bodies and connection resets -------------------------------------------------------------
@pytest.mark.parametrize("transfer", TRANSFERS.values(), ids=TRANSFERS.keys())
@pytest.mark.parametrize("kind", ["truncate", "reset"])
def test_broken_bodies_within_the_retry_budget_are_retried_and_verified(
    published: str,
    proxy: FaultProxy,
    planted_roberta: PlantedModel,
    tmp_path: Path,
    kind: FaultKind,
    transfer: TransferConfig,
) -> None:
    proxy.inject(WEIGHTS, Fault(kind), times=STREAM_ATTEMPTS - 1)

    report = warm_model(published, tmp_path, "torch", transfer=transfer)

    size = (planted_roberta.path / WEIGHTS).stat().st_size
    parts = -(-size // transfer.multipart_chunksize) if size >= transfer.multipart_threshold else 1
    assert len(proxy.injected) == STREAM_ATTEMPTS - 1
    assert proxy.gets(WEIGHTS) == parts + STREAM_ATTEMPTS - 1  # each broken GET retried once more
    assert sha256(report.model_dir / WEIGHTS) == sha256(planted_roberta.path / WEIGHTS)
    assert cache_entries(tmp_path) == [report.model_dir.name]


@pytest.mark.parametrize("kind", ["truncate", "reset"])
def test_broken_bodies_beyond_the_retry_budget_fail_init_cleanly_and_the_next_init_serves(
    app_factory: Callable[..., ModuleType],
    published: str,
    proxy: FaultProxy,
    planted_roberta: PlantedModel,
    tmp_path: Path,
    app_logs: Callable[[], list[dict[str, Any]]],
    kind: FaultKind,
) -> None:
    proxy.inject(WEIGHTS, Fault(kind), times=STREAM_ATTEMPTS)

    app = app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path))

    assert proxy.gets(WEIGHTS) == len(proxy.injected) == STREAM_ATTEMPTS
    cause = {"truncate": "total bytes expected", "reset": "Connection reset by peer"}[kind]
    assert_unavailable(app, app_logs(), DownloadFailed, "failed after retries", cause, f"{PREFIX}{WEIGHTS}")
    assert cache_entries(tmp_path) == []  # the partial staging directory is gone
    # A new sandbox on the same storage, on a network that breaks as often as the budget allows.
    proxy.inject(WEIGHTS, Fault(kind), times=STREAM_ATTEMPTS - 1)
    assert_serves(app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path)), planted_roberta)
    assert len(cache_entries(tmp_path)) == 1


# --- 503 SlowDown bursts --------------------------------------------------------------------------------
def test_a_slowdown_burst_on_every_object_is_absorbed_by_backoff(
    app_factory: Callable[..., ModuleType],
    published: str,
    s3_bucket: Bucket,
    proxy: FaultProxy,
    backoff: list[float],
    planted_roberta: PlantedModel,
    tmp_path: Path,
) -> None:
    burst = REQUEST_ATTEMPTS - 1
    keys = [MANIFEST_NAME, *published_keys(s3_bucket)]
    for key in keys:
        proxy.inject(key, Fault("slowdown"), times=burst)

    assert_serves(app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path)), planted_roberta)

    assert len(proxy.injected) == len(backoff) == burst * len(keys)
    assert all(proxy.gets(key) == burst + 1 for key in keys)
    # Full-jitter exponential backoff for throttling: the i-th retry waits up to 2**i seconds.
    assert 0 < max(backoff) <= 2 ** (burst - 1)


@pytest.mark.parametrize("key", [MANIFEST_NAME, WEIGHTS])
def test_a_slowdown_burst_longer_than_the_retry_budget_fails_init_with_a_clear_error(
    app_factory: Callable[..., ModuleType],
    published: str,
    proxy: FaultProxy,
    backoff: list[float],
    tmp_path: Path,
    app_logs: Callable[[], list[dict[str, Any]]],
    key: str,
) -> None:
    proxy.inject(key, Fault("slowdown"), times=REQUEST_ATTEMPTS)

    app = app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path))

    assert proxy.gets(key) == REQUEST_ATTEMPTS and len(backoff) == REQUEST_ATTEMPTS - 1
    message = assert_unavailable(app, app_logs(), DownloadFailed, "SlowDown", f"{PREFIX}{key}")
    assert "max retries" in message
    assert cache_entries(tmp_path) == []


# --- the local filesystem refuses writes mid-download ---------------------------------------------------
# Runs in a child process: a private tmpfs needs its own mount namespace, and a file-size limit applies to
# the whole process. The child warms the model once with the fault, lists the cache, lifts the fault, warms
# again and prints the outcome as one JSON line.
_WRITE_FAULT_CHILD = """
import json, resource, shutil, signal, sys
from pathlib import Path
from handler.store.errors import ModelStoreError
from handler.store.manifest import sha256_file
from handler.store.s3 import make_client
from handler.store.warm import warm_model

uri, root, mechanism, weights, leave = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
cache, filler = root / "cache", root / "filler"
client = make_client()
limits = resource.getrlimit(resource.RLIMIT_FSIZE)

def fill_the_disk(request, **_):
    # Another tenant of /tmp takes all but `leave` bytes after the preflight check, as the weights start.
    if request.url.split("?")[0].endswith("/" + weights) and not filler.exists():
        with filler.open("wb", buffering=0) as f:
            while (free := shutil.disk_usage(root).free) > leave:
                f.write(bytes(min(free - leave, 1 << 20)))

if mechanism == "tmpfs":
    client.meta.events.register("before-send.s3.GetObject", fill_the_disk)
else:  # writes past `leave` bytes fail with EFBIG (SIGXFSZ ignored, as a server process would)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (leave, limits[1]))
try:
    warm_model(uri, cache, "torch", client=client)
    error = None
except ModelStoreError as exc:
    error = [type(exc).__name__, str(exc)]
left = sorted(p.name for p in cache.iterdir() if p.name != ".lock")
client.meta.events.unregister("before-send.s3.GetObject", fill_the_disk)
filler.unlink(missing_ok=True)
resource.setrlimit(resource.RLIMIT_FSIZE, limits)
report = warm_model(uri, cache, "torch", client=client)
served = sorted(p.name for p in cache.iterdir() if p.name != ".lock")
print(json.dumps({"error": error, "left": left, "served": served, "dir": report.model_dir.name,
                  "sha256": sha256_file(report.model_dir / weights)}))
"""
TMPFS_BYTES = 32 << 20  # passes the preflight check (model + 16 MiB margin); the filler takes it later


def _private_tmpfs(mountpoint: Path) -> list[str]:
    """The command prefix that runs a command with a private ``TMPFS_BYTES`` tmpfs on ``mountpoint``: a
    user and mount namespace of its own, so it needs no root and vanishes with the child."""
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    namespaces = ["unshare", "--user", "--map-root-user", "--mount"]
    return [*namespaces, "sh", "-c", script, "sh", str(TMPFS_BYTES), str(mountpoint)]


def _can_mount_private_tmpfs(probe_dir: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe_dir.mkdir(exist_ok=True)
    probe = subprocess.run([*_private_tmpfs(probe_dir), "true"], capture_output=True, check=False)
    return probe.returncode == 0


def run_write_fault(published: str, root: Path, mechanism: str, leave: int) -> dict[str, Any]:
    command = [sys.executable, "-c", _WRITE_FAULT_CHILD, published, str(root), mechanism, WEIGHTS, str(leave)]
    if mechanism == "tmpfs":
        command = [*_private_tmpfs(root), *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Where the refused write falls: the first write crosses the limit (later writes fail outright), or only
# the last one does (a short write with no error: the bytes it drops must still fail the write, not the hash).
WRITE_FAULT_AT = {"mid-file": lambda size: size // 2, "last write": lambda size: size - 1}
WRITE_FAULT_MECHANISMS = {"tmpfs": errno.ENOSPC, "rlimit": errno.EFBIG}


@pytest.mark.parametrize("where", WRITE_FAULT_AT)
@pytest.mark.parametrize("mechanism", WRITE_FAULT_MECHANISMS)
def test_a_write_refused_mid_download_is_a_clear_error_and_leaves_nothing(
    published: str, planted_roberta: PlantedModel, tmp_path: Path, mechanism: str, where: str
) -> None:
    """``tmpfs``: real ENOSPC from a private, size-limited tmpfs that another writer fills after the
    preflight check. ``rlimit``: the same path on any machine, RLIMIT_FSIZE making the kernel refuse (EFBIG)."""
    if mechanism == "tmpfs" and not _can_mount_private_tmpfs(tmp_path / "probe"):
        pytest.skip("unprivileged user namespaces are disabled here; the rlimit case covers the same path")
    root = tmp_path / "tmp"
    root.mkdir()
    leave = WRITE_FAULT_AT[where]((planted_roberta.path / WEIGHTS).stat().st_size)

    outcome = run_write_fault(published, root, mechanism, leave)

    FAULTS[errno.errorcode[WRITE_FAULT_MECHANISMS[mechanism]].lower()] += 1
    kind, message = outcome["error"]
    assert kind == DownloadFailed.__name__, message
    assert "cannot write the model to local storage" in message and f"{PREFIX}{WEIGHTS}" in message
    assert os.strerror(WRITE_FAULT_MECHANISMS[mechanism]) in message
    assert outcome["left"] == []  # no half-written file or staging directory
    assert outcome["served"] == [outcome["dir"]]  # with the space back, the next warm-up succeeds
    assert outcome["sha256"] == sha256(planted_roberta.path / WEIGHTS)


# --- the cache changes between two inits ----------------------------------------------------------------
@pytest.mark.parametrize("victim", [None, WEIGHTS, "tokenizer.json"])
def test_a_cached_file_deleted_between_inits_is_downloaded_again(
    app_factory: Callable[..., ModuleType],
    published: str,
    s3_bucket: Bucket,
    proxy: FaultProxy,
    planted_roberta: PlantedModel,
    tmp_path: Path,
    victim: str | None,
) -> None:
    assert_serves(app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path)), planted_roberta)
    [model_dir] = [tmp_path / name for name in cache_entries(tmp_path)]
    if victim is not None:
        (model_dir / victim).unlink()
        FAULTS["cache file deleted"] += 1
    before = len(proxy.requests)

    assert_serves(app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path)), planted_roberta)

    fetched = sorted(path.rsplit("/", 1)[1] for method, path in proxy.requests[before:] if method == "GET")
    # The verified copy is reused (manifest only); with a file gone, the whole model is fetched afresh.
    assert fetched == sorted([MANIFEST_NAME] + (published_keys(s3_bucket) if victim else []))
    assert cache_entries(tmp_path) == [model_dir.name]
    for key in published_keys(s3_bucket):
        assert sha256(model_dir / key) == sha256(planted_roberta.path / key)


@pytest.mark.parametrize("rehash", [False, True], ids=["size+mtime", "rehash_cached"])
def test_corruption_that_keeps_size_and_mtime(
    published: str, planted_roberta: PlantedModel, tmp_path: Path, rehash: bool
) -> None:
    """What the cache check guarantees. The default fast path trusts a file whose size and mtime match the
    marker: it catches what crashes and partial writes do (a truncated, missing or rewritten file, since
    any write moves the mtime) without reading the weights again. Bytes flipped in place with the mtime
    put back are outside that model: only ``rehash_cached=True`` (a full re-hash) catches them."""
    first = warm_model(published, tmp_path, "torch")
    weights = first.model_dir / WEIGHTS
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    FAULTS["cache file corrupted"] += 1

    second = warm_model(published, tmp_path, "torch", rehash_cached=rehash)

    assert second.model_dir == first.model_dir
    if rehash:
        assert not second.skipped and second.bytes == first.bytes
        assert sha256(weights) == sha256(planted_roberta.path / WEIGHTS)
    else:
        assert second.skipped and second.bytes == 0
        assert weights.read_bytes() == bytes(data)  # the documented limit of the fast path


# --- a manifest that lies about sizes -------------------------------------------------------------------
def lie_about_size(bucket: Bucket, key: str, delta: int) -> None:
    """Rewrite the published manifest with ``key``'s size off by ``delta`` (its sha256 left true)."""
    manifest = published_manifest(bucket)
    [entry] = [f for f in manifest["files"] if f["key"] == key]
    entry["size"] += delta
    bucket.put(PREFIX + MANIFEST_NAME, json.dumps(manifest).encode())
    FAULTS["manifest size lie"] += 1


@pytest.mark.parametrize("transfer", TRANSFERS.values(), ids=TRANSFERS.keys())
@pytest.mark.parametrize("delta", [1, 100_000, -1, -100_000])
def test_a_manifest_that_lies_about_a_size_is_refused(
    published: str, s3_bucket: Bucket, tmp_path: Path, delta: int, transfer: TransferConfig
) -> None:
    lie_about_size(s3_bucket, WEIGHTS, delta)

    with pytest.raises(HashMismatch, match=rf"{PREFIX}{WEIGHTS}") as caught:
        warm_model(published, tmp_path, "torch", transfer=transfer)

    assert "re-run `python -m qa_tools.publish`" in str(caught.value)
    assert cache_entries(tmp_path) == []


def test_a_manifest_claiming_more_than_the_disk_holds_is_refused_before_downloading(
    published: str, s3_bucket: Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    lie_about_size(s3_bucket, WEIGHTS, 1 << 50)

    with pytest.raises(InsufficientStorage, match="EphemeralStorage"):
        warm_model(published, tmp_path, "torch")

    assert [path.rsplit("/", 1)[1] for _, path in proxy.requests] == [MANIFEST_NAME]
    assert cache_entries(tmp_path) == []


def test_a_manifest_lie_fails_init_and_is_never_loaded(
    app_factory: Callable[..., ModuleType],
    published: str,
    s3_bucket: Bucket,
    tmp_path: Path,
    app_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    lie_about_size(s3_bucket, WEIGHTS, -1)

    app = app_factory(MODEL_S3_URI=published, MODEL_DIR=str(tmp_path))

    assert_unavailable(app, app_logs(), HashMismatch, f"{PREFIX}{WEIGHTS}", "manifest says")
    assert cache_entries(tmp_path) == []


# --- a key that climbs out of the model directory -------------------------------------------------------
def test_a_traversal_key_fails_init_and_nothing_is_written_anywhere(
    app_factory: Callable[..., ModuleType],
    published: str,
    s3_bucket: Bucket,
    proxy: FaultProxy,
    tmp_path: Path,
    app_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    payload = b'{"planted": "outside the model directory"}'
    key = "../../escape.json"  # from MODEL_DIR/<digest>-torch/ to MODEL_DIR's parent
    manifest = published_manifest(s3_bucket)
    manifest["files"].append(
        {
            "key": key,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "variants": ["torch"],
        }
    )
    s3_bucket.put(PREFIX + MANIFEST_NAME, json.dumps(manifest).encode())
    s3_bucket.put(PREFIX + key, payload)  # S3 keys are literal: the object exists and would download
    FAULTS["traversal key"] += 1
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()

    app = app_factory(MODEL_S3_URI=published, MODEL_DIR=str(sandbox / "models"))

    assert_unavailable(app, app_logs(), UnsafeKey, "refused", repr(key))
    assert [path.rsplit("/", 1)[1] for _, path in proxy.requests] == [MANIFEST_NAME]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
