"""ONNX Runtime backend: the exported fp32 or int8 graph, with no torch or transformers in the process.

The image that serves ``QA_BACKEND=onnx`` ships neither library, so this module imports only onnxruntime and
numpy; the graph's own input list (from ``qa_tools.export``) decides whether segment ids are fed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from handler.variants import Variant

OUTPUT_NAMES = ("start_logits", "end_logits")

# Warm-up shape: big enough to touch every kernel once (allocator arenas, packed weights), cheap at init.
_WARMUP_TOKENS = 16


def session_options(threads: int) -> ort.SessionOptions:
    """Tuned for a Lambda sandbox: one request at a time, ``threads`` = the vCPUs Lambda granted."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # a transformer graph is a chain: parallel branches buy nothing
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # optimized_model_filepath stays unset: optimizing in memory at init avoids writes (the FS is read-only
    # except /tmp) and keeps the published file the only artifact to verify.
    opts.log_severity_level = 3  # errors only: ORT's warnings go to stderr, outside the structured logs
    return opts


class OnnxBackend:
    def __init__(self, model_path: Path, *, name: str, threads: int) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self.name = name
        self.session = ort.InferenceSession(
            str(self.model_path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
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
            "file": self.model_path.name,
        }

    def _warm_up(self) -> None:
        """One tiny inference at init, so the first real request does not pay for lazy allocation."""
        ones = np.ones((1, _WARMUP_TOKENS), dtype=np.int64)
        self.logits({"input_ids": ones, "attention_mask": ones, "token_type_ids": np.zeros_like(ones)})


def load(model_dir: Path, variant: Variant, *, threads: int) -> OnnxBackend:
    return OnnxBackend(model_dir / variant.weight_file, name=variant.name, threads=threads)
