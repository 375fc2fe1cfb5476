"""Why warming the model failed: one type per cause, each message saying what is wrong and what to do.

Raised at init; the function then answers 503 ``model_unavailable`` and logs the message. The messages name
the S3 URI and the settings involved, never credentials.
"""

from __future__ import annotations

# What every "publish it (again)" message tells the operator to run (the tooling lives outside the image).
PUBLISH_COMMAND = "python -m qa_tools.publish"


class ModelStoreError(Exception):
    """Warming the model from S3 (or the image) into local storage failed."""


class BucketNotFound(ModelStoreError):
    """The bucket does not exist (or is in another partition)."""


class AccessDenied(ModelStoreError):
    """Credentials are missing or the execution role may not read the model."""


class PrefixEmpty(ModelStoreError):
    """Nothing is published under the prefix."""


class ManifestMissing(ModelStoreError):
    """Objects exist under the prefix but no manifest.json: a publish is incomplete or was not ours."""


class InvalidManifest(ModelStoreError):
    """manifest.json is not a valid format-1 manifest, or it has no files for the chosen variant."""


class UnsafeKey(InvalidManifest):
    """A manifest key would write outside the model directory."""


class VariantMissing(ModelStoreError):
    """MODEL_LOCAL_PATH is a plain model directory without the file the chosen variant (an ONNX export) serves."""


class ObjectMissing(ModelStoreError):
    """The manifest lists a file that is not in the bucket."""


class HashMismatch(ModelStoreError):
    """A downloaded file's size or sha256 differs from the manifest."""


class InsufficientStorage(ModelStoreError):
    """The cache filesystem (/tmp) has too little free space for the model."""


class DownloadFailed(ModelStoreError):
    """The network or S3 failed after retries, or the cache directory is not writable."""
