"""AWS Lambda on-demand prices, us-east-1, the one table the benchmarks price requests with.

Source: https://aws.amazon.com/lambda/pricing/ (Lambda functions, US East (N. Virginia), first pricing tier:
the first 6 billion GB-seconds a month for x86, 7.5 billion for arm64); the same figures appear in tools that
copy AWS's table (e.g. artillery's lib/platform/aws-lambda/prices.js, base x86_64 1666670 / arm64 1333340 in
units of 1e-11 USD). Read 2026-12-07. Not included: the free tier, Savings Plans, ephemeral storage above
512 MB, provisioned concurrency, data transfer. Duration is billed in 1 ms increments.
"""

from __future__ import annotations

import math

PRICES_DATE = "2026-12-07"
PRICES_SOURCE = "https://aws.amazon.com/lambda/pricing/ (us-east-1, first tier)"
USD_PER_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
USD_PER_MILLION_REQUESTS = 0.20


def usd_per_million(duration_ms: float, memory_mb: int, architecture: str) -> float:
    """What 1,000,000 requests of ``duration_ms`` each cost at ``memory_mb``: duration (rounded up to the
    billed millisecond) x GB x price, plus the request charge."""
    billed_s = math.ceil(duration_ms) / 1000
    gb_seconds = billed_s * memory_mb / 1024
    return 1_000_000 * gb_seconds * USD_PER_GB_SECOND[architecture] + USD_PER_MILLION_REQUESTS
