"""The model store: a published model (``manifest.json`` + files under an S3 prefix) made local and verified.

``warm`` orchestrates; ``manifest`` says what was published and ``manifest_fetch`` reads it from S3 (or says
why it cannot); ``choice`` picks disk or memory; ``download`` (to disk) and ``memory`` fetch and hash; ``cache``
keeps verified copies in MODEL_DIR; ``baked`` checks a model in the image; ``report`` says what a warm-up did; ``golden`` holds the manifest's golden answers;
``s3`` talks to S3 and explains its errors; ``errors`` names every cause.

``__all__`` is the surface other packages (``qa_tools``, ``bench``) import. It holds only what ``warm``
and ``baked`` import at module level anyway; ``download`` and ``memory`` (boto3's transfer manager) stay out, so the init
imports them in the download thread, not before it starts.
"""

from handler.store.baked import open_baked
from handler.store.choice import choose_store
from handler.store.errors import ModelStoreError
from handler.store.golden import Golden, GoldenAnswer
from handler.store.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    ManifestError,
    check_key,
    sha256_file,
    variants_for,
)
from handler.store.report import WarmupReport
from handler.store.s3 import S3Location, error_code, make_client
from handler.store.warm import warm_from_s3, warm_into_memory, warm_model

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "Golden",
    "GoldenAnswer",
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
    "warm_from_s3",
    "warm_into_memory",
    "warm_model",
]
