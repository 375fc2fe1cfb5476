"""How many intra-op threads a sandbox runs: the one rule, from Lambda's CPU share, not from the visible cores.

Lambda gives CPU time in proportion to memory: 1,769 MB buys one vCPU's worth (share = memory / 1,769 MB),
but a sandbox sees 2 cores at every size up to 3,008 MB (more above) and is throttled to its share by a CFS
quota. Threads from ``sched_getaffinity`` would run 2 workers on 1.16 vCPUs at 2,048 MB, and ONNX Runtime's
spinning workers burn that credit while they wait. So:

* threads = min(visible cores, max(1, round(share))), halves rounded up -- ``round``, not ``ceil``: the two
  differ only where the share is just above a whole vCPU (2,048 MB: 1.16), and there one thread was measured
  against two under the quota (bench/thread_rule.py, docs/performance.md);
* ONNX Runtime's intra-op spinning is off (``session.intra_op.allow_spinning`` = "0") whenever the share is
  below the thread count, so waiting workers sleep instead of spending the quota;
* without ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (not on Lambda: tests, benchmarks, a laptop) the share is the
  visible cores and spinning stays on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # set by Lambda in every sandbox, in MB
MB_PER_VCPU = 1769  # Lambda: "at 1,769 MB, a function has the equivalent of one vCPU"


def visible_cores() -> int:
    """Cores this process may run on (affinity), which on Lambda is more than the CPU time it may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _memory_mb(environ: dict[str, str] | os._Environ[str]) -> int | None:
    raw = environ.get(MEMORY_ENV, "").strip()
    try:
        return int(raw) if raw else None
    except ValueError:  # Lambda always sets an integer; anything else is not Lambda's
        return None


@dataclass(frozen=True)
class ThreadPlan:
    threads: int  # intra-op threads (ONNX Runtime) / torch.set_num_threads
    share: float  # vCPUs of CPU time: memory / 1,769 MB, or the visible cores off Lambda
    visible: int  # cores the sandbox can see
    memory_mb: int | None  # AWS_LAMBDA_FUNCTION_MEMORY_SIZE, None off Lambda

    @property
    def spinning(self) -> bool:
        return allow_spinning(self.threads, self.share)

    def describe(self) -> dict[str, str]:
        return {
            "threads": str(self.threads),
            "cpu_share": f"{self.share:.2f}",
            "visible_cores": str(self.visible),
            "memory_mb": str(self.memory_mb or ""),
            "spinning": "on" if self.spinning else "off",
        }


def allow_spinning(threads: int, share: float | None = None) -> bool:
    """Whether idle workers may spin: only when the share (default: this sandbox's) covers every thread."""
    return (plan().share if share is None else share) >= threads


def plan(
    memory_mb: int | None = None, visible: int | None = None, environ: dict[str, str] | None = None
) -> ThreadPlan:
    """The rule. Arguments override the environment (tests); by default it reads Lambda's variable."""
    cores = visible if visible is not None else visible_cores()
    memory = memory_mb if memory_mb is not None else _memory_mb(os.environ if environ is None else environ)
    if memory is None:
        return ThreadPlan(threads=cores, share=float(cores), visible=cores, memory_mb=None)
    share = memory / MB_PER_VCPU
    return ThreadPlan(
        threads=min(cores, max(1, math.floor(share + 0.5))), share=share, visible=cores, memory_mb=memory
    )
