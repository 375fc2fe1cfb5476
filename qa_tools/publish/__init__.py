"""Publish a model for the function: ``python -m qa_tools.publish SOURCE s3://bucket/prefix/`` (or ``DIR``).

SOURCE is a local model directory or a Hugging Face model id (downloaded with huggingface_hub; needs
internet). The model is normalised (safetensors weights, fast ``tokenizer.json``, config), each requested
variant with a builder (``handler.variants``: the ONNX exports) is built, each lossy one (int8) is measured
against its reference on the probe set (``qa_tools.fidelity``: refused below the threshold unless
``--allow-lossy``; the reference's answers go into the manifest as golden answers, which the function's
self-check re-asks on Lambda's CPU), every file is hashed into ``manifest.json`` with those figures, and files are uploaded
concurrently with a progress bar. The manifest goes up LAST: until then the warm-up sees the previous model
(or none), never a half-published one. Files whose object already has the same size and sha256 are skipped, so
re-publishing the same model uploads nothing and an interrupted publish resumes where it stopped.

A destination without ``s3://`` is a local directory: the same files and manifest, for MODEL_LOCAL_PATH (e.g.
the ONNX variants for ``QA_BACKEND=onnx``) or the image's ``baked`` target. It appears complete or not at all
(written beside it, then renamed), and replaces only an earlier publish, never a directory of other files.

One module per job: ``source`` (a directory or Hub id, normalised; the files the variants need), ``build``
(the variants' builders), ``fidelity_check`` (the gate), ``upload`` (S3) or ``local`` (a directory),
``pipeline`` (``publish``: all of them in order), ``cli`` (the command line); ``result`` and ``log`` are shared.
"""

from qa_tools.publish.cli import main
from qa_tools.publish.pipeline import publish
from qa_tools.publish.result import PublishResult
from qa_tools.publish.source import local_source
from qa_tools.publish.upload import SHA256_METADATA

__all__ = ["SHA256_METADATA", "PublishResult", "local_source", "main", "publish"]
