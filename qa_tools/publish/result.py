"""What a publish did: the manifest, and which files went up or were already there."""

from __future__ import annotations

from dataclasses import dataclass

from handler.store import Manifest


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    manifest: Manifest
    uploaded: tuple[str, ...]
    skipped: tuple[str, ...]  # already in the bucket with the same size and sha256
    manifest_uploaded: bool  # False when the bucket already had this exact manifest
