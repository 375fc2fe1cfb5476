"""Where the team's material sits: ``../shared`` beside the repository (data and the original minilm model).

Benchmarks read it; tests never do (a user's clone has only what the repository ships)."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
SQUAD = SHARED / "data" / "squad-dev-v2.0.json"
XQUAD = SHARED / "data" / "xquad.en.json"
MINILM = SHARED / "models" / "minilm-l6-squad"
