"""Benchmark: warm-up download of a roberta-base-sized model (~500 MB) from a local S3, one run each.

Compares the model store's warm-up (all files concurrently, large ones as parallel ranged GETs, hashed while
downloading, atomic rename) with the seeds' approach (list the prefix, one ``download_file`` after another,
no verification) and with the seeds' approach plus a sha256 pass afterwards (the same safety, sequentially),
against one server on 127.0.0.1: moto in its own process by default, or any S3-compatible server given with
``--endpoint``. The warm-up is also run with the CRT transfer client when ``awscrt`` is importable.

    python bench/download.py [--workdir /tmp/qa-bench-download] [--json bench/results/download.json]
    # a server that streams ranges from disk (npm's s3rver; its default credentials are S3RVER/S3RVER):
    npx s3rver -d /tmp/s3rver -a 127.0.0.1 -p 4568 --silent &
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER python bench/download.py --endpoint http://127.0.0.1:4568

Caveat: moto reads a whole object for every ranged GET, so there ranged downloads cost O(object size) per
range; real S3 serves each range independently. On loopback the download is CPU-bound, so hashing (which the
seeds skip) shows up in full; on Lambda it overlaps network time. Figures compare approaches, not AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from boto3.s3.transfer import TransferConfig

from handler.store import S3Location, sha256_file, warm_model
from handler.store import download as downloader  # the downloader's own settings: what this bench tunes
from handler.store.download import CHUNK_BYTES, CONCURRENCY, default_transfer_config
from qa_tools.publish import publish

LOOPBACK = "127.0.0.1"
BUCKET = "bench-models"
PREFIX = "roberta-base-random/"
MIB = 1 << 20


def build_model(path: Path) -> Path:
    """roberta-base's shape (124M parameters, fp32 safetensors) with random weights and a small tokenizer."""
    if (path / "model.safetensors").is_file():
        return path
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForQuestionAnswering

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))  # noqa: S106 - a token, not a password
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(
        ["a tiny corpus for a benchmark tokenizer"] * 10, trainers.BpeTrainer(special_tokens=specials)
    )
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    PreTrainedTokenizerFast(tokenizer_object=tok, **special).save_pretrained(path)
    RobertaForQuestionAnswering(RobertaConfig()).save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(2 << 30)}  # objects in memory, not temp files
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection((LOOPBACK, port), timeout=0.1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("moto server did not start")


def seeds_download(uri: str, dest: Path, *, verify: bool = False) -> int:
    """The seeds' helper: list the prefix and download every object in turn, trusting whatever is there.

    ``verify`` adds what the warm-up guarantees and the seeds lack, a sha256 pass over each file afterwards,
    to show what the same safety costs done sequentially.
    """
    location = S3Location.parse(uri)
    client = boto3.client("s3")
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=location.prefix
    ):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(location.prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(location.bucket, obj["Key"], str(target))
            total += obj["Size"]
            if verify:
                sha256_file(target)
    return total


def timed(run: Callable[[Path], int], workdir: Path, name: str) -> dict[str, float | str] | None:
    """One run into a fresh directory; a failure is reported, not fatal (the other approaches still run)."""
    dest = workdir / "dest"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    start = time.perf_counter()
    try:
        size = run(dest)
    except Exception as exc:  # a benchmark reports and moves on
        print(f"{name}: FAILED after {time.perf_counter() - start:.1f} s: {type(exc).__name__}: {exc}")
        return None
    finally:
        seconds = time.perf_counter() - start
        shutil.rmtree(dest, ignore_errors=True)
    print(f"{name}: {size / MIB:,.0f} MiB in {seconds:.2f} s")
    return {"approach": name, "mb": size / MIB, "seconds": seconds, "mb_per_s": size / MIB / seconds}


def crt_warm_up(uri: str) -> Callable[[Path], int] | None:
    """The warm-up with the CRT transfer client instead of s3transfer's, if awscrt is installed.

    boto3's CRT integration hard-codes TLS, which a plain-HTTP loopback server cannot speak, so the CRT client
    is built here with s3transfer's own factory (TLS off for http:// endpoints) and handed to the warm-up.
    """
    try:
        import botocore.session
        from s3transfer.crt import (
            BotocoreCRTCredentialsWrapper,
            BotocoreCRTRequestSerializer,
            CRTTransferManager,
            create_s3_crt_client,
        )
    except ImportError:
        print("CRT not measured: awscrt is not installed (pip install awscrt)")
        return None
    session = botocore.session.Session()
    region = os.environ["AWS_DEFAULT_REGION"]
    crt_client = create_s3_crt_client(
        region,
        crt_credentials_provider=BotocoreCRTCredentialsWrapper(
            session.get_credentials()
        ).to_crt_credentials_provider(),
        use_ssl=not os.environ["AWS_ENDPOINT_URL_S3"].startswith("http://"),
        part_size=CHUNK_BYTES,
    )
    serializer = BotocoreCRTRequestSerializer(session, {"region_name": region, "endpoint_url": None})

    def run(dest: Path) -> int:
        classic = downloader.create_transfer_manager
        downloader.create_transfer_manager = lambda client, config: CRTTransferManager(crt_client, serializer)
        try:
            return warm_model(uri, dest, "torch").bytes
        finally:
            downloader.create_transfer_manager = classic

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "qa-bench-download")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--endpoint",
        help="an S3-compatible server already listening on 127.0.0.1 (e.g. http://127.0.0.1:4568) instead of "
        "moto; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    )
    args = parser.parse_args()
    if args.endpoint and urlparse(args.endpoint).hostname not in (LOOPBACK, "localhost"):
        parser.error("--endpoint must be on 127.0.0.1")

    model = build_model(args.workdir / "model")
    size = sum(p.stat().st_size for p in model.iterdir() if p.is_file())
    print(f"model: {model} ({size / MIB:,.0f} MiB)")
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL_S3=args.endpoint or f"http://{LOOPBACK}:{port}", AWS_EC2_METADATA_DISABLED="true"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # dummy credentials for the local server
        os.environ.setdefault(name, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = None if args.endpoint else start_moto(port)
    print(f"server: {os.environ['AWS_ENDPOINT_URL_S3']} ({'external' if server is None else 'moto'})")
    try:
        client = boto3.client("s3")
        if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
            client.create_bucket(Bucket=BUCKET)
        uri = f"s3://{BUCKET}/{PREFIX}"
        started = time.perf_counter()
        publish(str(model), uri, variants=["torch"], progress=False)
        print(f"published to the local S3 in {time.perf_counter() - started:.1f} s")

        def ours(transfer: TransferConfig) -> Callable[[Path], int]:
            return lambda dest: warm_model(uri, dest, "torch", transfer=transfer).bytes

        seeds = timed(lambda dest: seeds_download(uri, dest), args.workdir, "seeds: download_file in turn")
        runs = [
            seeds,
            timed(
                lambda dest: seeds_download(uri, dest, verify=True), args.workdir, "seeds + sha256 afterwards"
            ),
            timed(ours(default_transfer_config()), args.workdir, "warm_model (s3transfer)"),
        ]
        crt = crt_warm_up(uri)
        if crt is not None:
            runs.append(timed(crt, args.workdir, "warm_model (CRT)"))
    finally:
        if server is not None:
            server.terminate()
            server.wait()

    runs = [run for run in runs if run is not None]
    if seeds is None or len(runs) < 2:
        raise SystemExit("not enough successful runs to compare")
    base = seeds["mb_per_s"]
    print(f"\n{'approach':32} {'MiB':>7} {'seconds':>8} {'MiB/s':>7} {'x seeds':>8}")
    for run in runs:
        ratio = float(run["mb_per_s"]) / float(base)
        print(
            f"{run['approach']:32} {run['mb']:7.0f} {run['seconds']:8.2f} {run['mb_per_s']:7.1f} {ratio:8.2f}"
        )
    print(f"\nwarm_model: {CHUNK_BYTES // MIB} MiB ranges, {CONCURRENCY} in flight, verified (size + sha256)")
    print(f"load average during the runs: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
