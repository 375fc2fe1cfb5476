"""The probe set publish uses to measure a lossy variant against its reference (see README.md here)."""

from __future__ import annotations

from pathlib import Path

PROBES = Path(__file__).with_name("probes.json")
