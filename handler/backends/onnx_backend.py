"""ONNX Runtime backend: the exported fp32 or int8 graph, with no torch or transformers in the process.

The image that serves ``QA_BACKEND=onnx`` ships neither library, so this module imports only onnxruntime and
numpy; the graph's own input list (from ``qa_tools.export``) decides whether segment ids are fed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from handler.hardware.threads import allow_spinning
from handler.variants import Variant

if TYPE_CHECKING:
    from handler.model_files import ModelFiles

OUTPUT_NAMES = ("start_logits", "end_logits")

# Warm-up shape: big enough to touch every kernel once (allocator arenas, packed weights), cheap at init.
_WARMUP_TOKENS = 16


SPINNING = "session.intra_op.allow_spinning"


def session_options(threads: int, spinning: bool | None = None) -> ort.SessionOptions:
    """Tuned for a Lambda sandbox: one request at a time, ``threads`` from the CPU share
    (``handler.hardware.threads``); idle workers spin only when the share covers them all."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not (allow_spinning(threads) if spinning is None else spinning):
        opts.add_session_config_entry(SPINNING, "0")  # waiting workers sleep instead of spending the quota
    opts.inter_op_num_threads = 1  # a transformer graph is a chain: parallel branches buy nothing
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # optimized_model_filepath stays unset: optimizing in memory at init avoids writes (the FS is read-only
    # except /tmp) and keeps the published file the only artifact to verify.
    opts.log_severity_level = 3  # errors only: ORT's warnings go to stderr, outside the structured logs
    return opts


class OnnxBackend:
    """``model``: the graph's path, or its bytes (with any external-data files by name) when held in memory."""

    def __init__(
        self,
        model: Path | bytes,
        *,
        name: str,
        threads: int,
        file_name: str = "",
        external_data: Mapping[str, bytes] | None = None,
    ) -> None:
        self.file_name = file_name or ("" if isinstance(model, bytes) else Path(model).name)
        self.threads = threads
        self.spinning = allow_spinning(threads)
        self.name = name
        opts = session_options(threads, self.spinning)
        if external_data:  # ONNX Runtime copies what it needs while the session is created
            names, buffers = list(external_data), list(external_data.values())
            opts.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
        # ORT's Python wrapper keeps model bytes for the session's whole life (its own comment: "This is bad as
        # we're holding the memory indefinitely"), only to rebuild the session on an execution-provider
        # fallback, which a CPU-only session never does. The session owns its weights by now: let them go.
        self.session._model_bytes = None
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self._warm_up()

    def logits(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(OUTPUT_NAMES, {k: inputs[k] for k in self.input_names})
        return start, end

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "onnxruntime": ort.__version__,
            "threads": str(self.threads),
            "spinning": "on" if self.spinning else "off",
            "file": self.file_name,
        }

    def _warm_up(self) -> None:
        """One tiny inference at init, so the first real request does not pay for lazy allocation."""
        ones = np.ones((1, _WARMUP_TOKENS), dtype=np.int64)
        self.logits({"input_ids": ones, "attention_mask": ones, "token_type_ids": np.zeros_like(ones)})


def load(files: ModelFiles, variant: Variant, *, threads: int) -> OnnxBackend:
    path = files.path(variant.weight_file)
    if path is not None:
        return OnnxBackend(path, name=variant.name, threads=threads)
    # In memory: external-data files are named as the graph references them, relative to the graph's folder.
    folder = PurePosixPath(variant.weight_file).parent
    external = {
        str(PurePosixPath(key).relative_to(folder)): files.read_bytes(key)
        for key in files.file_keys()
        if key != variant.weight_file and variant.owns(PurePosixPath(key).name)
    }
    return OnnxBackend(
        files.read_bytes(variant.weight_file),
        name=variant.name,
        threads=threads,
        file_name=variant.weight_file,
        external_data=external,
    )
