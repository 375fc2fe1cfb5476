"""moto's S3 server on 127.0.0.1 in its own process, with ranged GETs made O(range) like real S3's.

    python bench/_moto.py PORT [--stock]

Stock moto copies the whole object out of its buffer, under a per-object lock, for every GET, and a ranged
GET then slices that copy: a 473 MiB model fetched as 16 MiB ranges costs ~30 whole-object copies, done one at
a time, so every download crawls at ~10 MiB/s whatever the client does (docs/model-store.md). That would make
cold start a measure of moto. The patch caches each object's bytes once (objects are immutable once written;
an overwrite drops the cache), so a range costs its own length and concurrent GETs proceed concurrently.
``--stock`` runs moto unpatched, to see the difference.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
_CACHE = "_bench_value_cache"


def patch_moto() -> None:
    from moto.s3.models import FakeKey

    stock = FakeKey.value

    def cached(self: Any) -> bytes:
        value = self.__dict__.get(_CACHE)
        if value is None:
            value = self.__dict__[_CACHE] = stock.fget(self)
        return value

    def assign(self: Any, new_value: bytes) -> None:
        self.__dict__.pop(_CACHE, None)
        stock.fset(self, new_value)

    FakeKey.value = property(cached, assign)


def start(port: int, *, stock: bool = False) -> subprocess.Popen[bytes]:
    """Starts the server process and waits until it accepts connections."""
    command = [sys.executable, str(Path(__file__).resolve()), str(port)] + (["--stock"] if stock else [])
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.2).close()
            return server
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the moto server did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--stock", action="store_true", help="unpatched moto (whole-object copy per GET)")
    args = parser.parse_args()
    if not args.stock:
        patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import main as moto_main

    moto_main(["-H", LOOPBACK, "-p", str(args.port)])


if __name__ == "__main__":
    main()


def client_env(port: int, workdir: Path) -> dict[str, str]:
    """What a child process needs to reach this server through boto3's standard variables, with dummy
    credentials and no AWS config of the machine it runs on."""
    return {
        "AWS_ENDPOINT_URL_S3": f"http://{LOOPBACK}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-config"),
    }
