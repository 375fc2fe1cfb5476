"""The thread rule under a real CPU quota: a cgroup v1 CFS quota of memory / 1,769 MB vCPUs, as Lambda's.

A child process with ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` set chooses its threads and ONNX Runtime's spinning
by the rule, is then moved into a fresh group under /sys/fs/cgroup/cpu with that quota, and keeps every
visible core busy for a second of wall time (SHA-256 of a large buffer releases the GIL). The group's
``cpu.stat`` must count throttled periods, and the child must not get more CPU time than its quota allows,
however loaded the machine is (a loaded machine gives it less, never more). Needs root and the cgroup v1
``cpu`` controller; skipped, with the reason, where either is missing. The group is removed afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.hardware import cpu
from handler.hardware.threads import MB_PER_VCPU, MEMORY_ENV, plan

REPO = Path(__file__).resolve().parents[2]
CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
BURN_S = 1.0

CHILD = f"""
import hashlib, json, os, sys, threading, time
from handler.hardware.threads import plan
from handler.backends.onnx_backend import SPINNING, session_options

chosen = plan()
try:
    spinning = session_options(chosen.threads).get_session_config_entry(SPINNING)
except RuntimeError:  # the entry is unset: ONNX Runtime's default (spinning on)
    spinning = "default"
print(json.dumps({{"threads": chosen.threads, "spinning": spinning}}), flush=True)
sys.stdin.readline()  # the parent moves this process into the quota group, then says go
cgroup = open("/proc/self/cgroup").read()
before = os.times()

def burn():
    data, end = bytes(1 << 20), time.monotonic() + {BURN_S}
    while time.monotonic() < end:
        hashlib.sha256(data).digest()

workers = [threading.Thread(target=burn) for _ in range(chosen.visible)]
started = time.monotonic()
for w in workers:
    w.start()
for w in workers:
    w.join()
after = os.times()
cpu = (after.user - before.user) + (after.system - before.system)
print(json.dumps({{"cpu_s": cpu, "wall_s": time.monotonic() - started, "cgroup": cgroup}}), flush=True)
"""


def _cpu_controller_v1() -> str | None:
    """None when usable, else why not."""
    if os.geteuid() != 0:
        return "needs root to create a cgroup"
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    v1_cpu = [m for m in mounts if m.split()[2] == "cgroup" and "cpu" in m.split()[3].split(",")]
    if not v1_cpu or not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return "no cgroup v1 cpu controller mounted (mount | grep cgroup)"
    return None


@pytest.fixture
def group() -> Iterator[Path]:
    reason = _cpu_controller_v1()
    if reason:
        pytest.skip(reason)
    path = CPU_ROOT / f"qa-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()  # the child has exited: the group is empty


def run_under_quota(group: Path, memory_mb: int) -> tuple[dict[str, object], dict[str, object], int]:
    """The child's choice, its CPU time over the burn, and the periods the group was throttled."""
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(round(memory_mb / MB_PER_VCPU * PERIOD_US)))
    env = {**os.environ, MEMORY_ENV: str(memory_mb), "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        chosen = json.loads(child.stdout.readline())
        (group / "cgroup.procs").write_text(str(child.pid))
        child.stdin.write("go\n")
        child.stdin.flush()
        used = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
    return chosen, used, int(stat["nr_throttled"])


def test_a_small_share_means_one_thread_no_spinning_and_throttling(group: Path) -> None:
    """128 MB: 0.07 vCPUs. Every visible core busy is far beyond that, loaded machine or not."""
    chosen, used, throttled = run_under_quota(group, 128)
    assert chosen == {"threads": 1, "spinning": "0"}
    assert group.name in str(used["cgroup"]), "the child must run inside the quota group"
    assert throttled > 0
    share = 128 / MB_PER_VCPU
    allowed = share * float(used["wall_s"]) + share * PERIOD_US / 1e6  # + one period of quota
    assert float(used["cpu_s"]) <= allowed * 1.5, used


@pytest.mark.parametrize("memory_mb", [1769, 3008, 3538])
def test_the_child_chooses_the_rule_s_threads(group: Path, memory_mb: int) -> None:
    chosen, used, _ = run_under_quota(group, memory_mb)
    expected = plan(memory_mb=memory_mb)
    assert chosen["threads"] == expected.threads
    assert chosen["spinning"] == ("default" if expected.spinning else "0")
    share = memory_mb / MB_PER_VCPU
    assert float(used["cpu_s"]) <= (share * float(used["wall_s"]) + share * PERIOD_US / 1e6) * 1.5, used


def test_init_logs_the_cpu_and_the_threads_once(
    app_factory: Any, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(MEMORY_ENV, "1024")
    with caplog.at_level(logging.INFO):
        app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), QA_BACKEND="torch")
    [loaded] = [r for r in caplog.records if r.getMessage() == "model loaded"]
    fields = vars(loaded)
    assert fields["cpu_model"] == cpu.cpu_model() and fields["cpu_int8"]
    assert (fields["threads"], fields["memory_mb"], fields["spinning"]) == ("1", "1024", "off")
    assert app.SERVICE.engine.backend.threads == 1
