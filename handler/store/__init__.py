"""The model store: a published model (``manifest.json`` + files under an S3 prefix) made local and verified.

``warm`` orchestrates; ``manifest`` says what was published; ``s3`` talks to S3 and explains its errors;
``download`` fetches and hashes; ``cache`` keeps verified copies in MODEL_DIR; ``errors`` names every cause.

``__all__`` is the surface other packages (``qa_tools``, ``bench``) import. It holds only what ``warm``
imports at module level anyway; ``download`` and ``memory`` (boto3's transfer manager) stay out, so the init
imports them in the download thread, not before it starts.
"""

from handler.store.errors import ModelStoreError
from handler.store.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ManifestError,
    check_key,
    sha256_file,
    variants_for,
)
from handler.store.s3 import S3Location, error_code, make_client
from handler.store.warm import WarmupReport, choose_store, open_baked, warm, warm_into_memory, warm_model

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "ModelStoreError",
    "S3Location",
    "WarmupReport",
    "check_key",
    "choose_store",
    "error_code",
    "make_client",
    "open_baked",
    "sha256_file",
    "variants_for",
    "warm",
    "warm_into_memory",
    "warm_model",
]
