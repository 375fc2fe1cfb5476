"""How many questions one invocation gets: the batch must finish within the function's timeout.

The work of a batch is its windows. From a measured time per window (the function's ``InferenceMs`` /
``WindowsPerRequest`` metrics, or ``bulk run``'s summary on comparable CPUs), the windows one invocation can
afford are

    windows = floor(utilization * (timeout_ms - margin_ms) / ms_per_window)

with ``margin_ms`` what the function keeps back (``handler.service.SAFETY_MARGIN_MS``) and ``utilization``
(0.7) headroom for slower sandboxes and longer-than-average items. The ItemBatcher closes a batch at whichever
limit comes first:

    MaxItemsPerBatch      = floor(windows / windows_per_item)     (typical items)
    MaxInputBytesPerBatch = floor(windows * bytes_per_window)     (long contexts: bytes track windows)

A batch that still runs short of time is cut by the function itself: the rest comes back ``out_of_time``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from handler.service import SAFETY_MARGIN_MS
from handler.settings import DEFAULT_MAX_BULK_ITEMS

UTILIZATION = 0.7
# Step Functions' payload limit (a child execution's input, and so a batch): 262,144 bytes.
MAX_PAYLOAD_BYTES = 262_144
MIN_BATCH_BYTES = 1024  # the template's lower bound for MaxInputBytesPerBatch


@dataclass(frozen=True)
class BatchLimits:
    windows: int  # windows one invocation can afford
    max_items_per_batch: int
    max_input_bytes_per_batch: int


def batch_limits(
    *,
    ms_per_window: float,
    windows_per_item: float,
    bytes_per_window: float,
    timeout_s: float,
    utilization: float = UTILIZATION,
    margin_ms: float = SAFETY_MARGIN_MS,
) -> BatchLimits:
    if min(ms_per_window, windows_per_item, bytes_per_window, timeout_s) <= 0 or not 0 < utilization <= 1:
        raise ValueError("times, sizes and the timeout must be positive, utilization in (0, 1]")
    windows = max(1, math.floor(utilization * (timeout_s * 1000 - margin_ms) / ms_per_window))
    items = min(DEFAULT_MAX_BULK_ITEMS, max(1, math.floor(windows / windows_per_item)))
    size = min(MAX_PAYLOAD_BYTES, max(MIN_BATCH_BYTES, math.floor(windows * bytes_per_window)))
    return BatchLimits(windows, items, size)


# The template's defaults: roberta-base on torch, 2 vCPUs, 4,172 ms per batch of eight 384-token windows
# (docs/performance.md, warm 384 p50), and SQuAD 2.0 dev as JSONL items with gold answers (1.02 windows and
# 973 bytes per window, measured with a BERT WordPiece tokenizer at 384/128 tokens).
REFERENCE = {"ms_per_window": 4172 / 8, "windows_per_item": 1.02, "bytes_per_window": 973}
