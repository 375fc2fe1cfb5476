"""Reference backend: transformers' AutoModelForQuestionAnswering on torch, fp32, CPU."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForQuestionAnswering

from handler.variants import Variant


class TorchBackend:
    name = "torch"

    def __init__(self, model_dir: Path, *, threads: int) -> None:
        torch.set_num_threads(threads)
        transformers.utils.logging.disable_progress_bar()  # a progress bar is noise in CloudWatch
        self.threads = threads
        self.model = AutoModelForQuestionAnswering.from_pretrained(  # a local directory only  # nosec B615
            model_dir, dtype=torch.float32, local_files_only=True
        )
        self.model.eval()
        accepted = inspect.signature(self.model.forward).parameters
        # As the pipeline's tokenizer.model_input_names: BERT-style models take segment ids, RoBERTa not.
        uses_types = "token_type_ids" in accepted and getattr(self.model.config, "type_vocab_size", 0) > 1
        self.input_names = ("input_ids", "attention_mask") + (("token_type_ids",) if uses_types else ())

    def logits(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            out = self.model(**{k: torch.from_numpy(inputs[k]) for k in self.input_names})
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "threads": str(self.threads),
        }


def load(model_dir: Path, variant: Variant, *, threads: int) -> TorchBackend:
    return TorchBackend(model_dir, threads=threads)
