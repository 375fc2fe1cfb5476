"""Lambda's CPU share on this machine: a cgroup v1 CFS quota of memory / 1,769 MB vCPUs per period.

Lambda throttles a sandbox to its share of CPU time while it sees 2 cores (up to 3,008 MB; 3 at 5,307 MB).
Here a child process is started inside a group whose ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` is that
share (capped at the cores this machine has), and the group's ``cpu.stat`` says how often it was throttled.
Needs root and the cgroup v1 ``cpu`` controller (``mount | grep cgroup``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
MB_PER_VCPU = 1769


def unavailable() -> str | None:
    """None when quotas can be set here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return "no cgroup v1 cpu controller at /sys/fs/cgroup/cpu"
    return None


@dataclass(frozen=True)
class Quota:
    path: Path
    memory_mb: int
    share: float  # what Lambda grants at this memory size, in vCPUs
    cores: float  # what this group grants: the share, capped at this machine's cores

    def prefix(self) -> list[str]:
        """A command prefix that moves the process into the group before it runs anything."""
        shell = shutil.which("sh") or "/bin/sh"
        return [shell, "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path)]

    def throttled(self) -> dict[str, int]:
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return {k: int(v) for k, v in stat.items()}


@contextmanager
def quota(memory_mb: int, cores: int | None = None) -> Iterator[Quota]:
    """A fresh group with Lambda's quota for ``memory_mb``; removed afterwards (its processes must be gone)."""
    machine = cores or len(os.sched_getaffinity(0))
    share = memory_mb / MB_PER_VCPU
    granted = min(share, machine)
    path = CPU_ROOT / f"qa-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (path / "cpu.cfs_quota_us").write_text(str(round(granted * PERIOD_US)))
        yield Quota(path, memory_mb, share, granted)
    finally:
        path.rmdir()
