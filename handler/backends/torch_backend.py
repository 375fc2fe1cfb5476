"""Reference backend: transformers' question-answering model on torch, fp32, CPU.

From a directory it is ``AutoModelForQuestionAnswering.from_pretrained``. From files held in memory (no copy on
disk) the weights go through ``safetensors.torch.load`` into the concrete class the Auto mapping names:
``AutoModel...from_pretrained(None, state_dict=...)`` fails in transformers 5 (it probes ``os.path.isdir(None)``),
and a meta-device model with ``load_state_dict(assign=True)`` leaves non-persistent buffers (position ids) on
``meta`` and answers wrongly. Peak memory is the file bytes plus the tensors (2x the weights) until the store
releases the bytes after loading; the model shares the tensors' storage.
"""

from __future__ import annotations

import inspect
import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import transformers
from transformers import AutoModelForQuestionAnswering

from handler.variants import Variant

if TYPE_CHECKING:
    from handler.model_files import ModelFiles


class TorchBackend:
    name = "torch"

    def __init__(self, model: Any, *, threads: int) -> None:
        """``model``: a model directory, or an already built ``PreTrainedModel``."""
        torch.set_num_threads(threads)
        transformers.utils.logging.disable_progress_bar()  # a progress bar is noise in CloudWatch
        self.threads = threads
        if isinstance(model, torch.nn.Module):
            self.model = model
        else:
            self.model = AutoModelForQuestionAnswering.from_pretrained(  # a local directory only  # nosec B615
                model, dtype=torch.float32, local_files_only=True
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


def model_from_memory(files: ModelFiles, variant: Variant) -> torch.nn.Module:
    """The QA model from ``config.json`` and the variant's safetensors files (all shards) held in memory."""
    from safetensors.torch import load as load_safetensors
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING

    raw = json.loads(files.read_text("config.json"))
    config = CONFIG_MAPPING[raw["model_type"]].from_dict(raw)
    model_class = MODEL_FOR_QUESTION_ANSWERING_MAPPING[type(config)]
    weights = [
        k for k in files.file_keys() if variant.owns(PurePosixPath(k).name) and k.endswith(".safetensors")
    ]
    if not weights:
        raise FileNotFoundError(f"no safetensors weights among the model files ({files.name})")
    state_dict: dict[str, torch.Tensor] = {}
    for key in weights:
        state_dict.update(load_safetensors(files.read_bytes(key)))
    return model_class.from_pretrained(None, config=config, state_dict=state_dict, dtype=torch.float32)


def load(files: ModelFiles, variant: Variant, *, threads: int) -> TorchBackend:
    path = files.path("config.json")
    model = path.parent if path is not None else model_from_memory(files, variant)
    return TorchBackend(model, threads=threads)
