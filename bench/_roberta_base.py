"""A stand-in for deepset/roberta-base-squad2 that needs no network: its exact config, random weights.

Cold start and latency depend on the architecture and the size of the weights, not on their values, so a
randomly initialised RoBERTa-base with the reference's config costs what the real model costs. The tokenizer
is a real byte-level BPE (RoBERTa's pre-tokenizer, post-processor and special-token ids) trained on the
benchmark's own text, so SQuAD contexts come out at about the token counts the real vocabulary gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

# config.json of deepset/roberta-base-squad2 (architecture fields): 124M parameters, 473 MiB in fp32.
ROBERTA_BASE_SQUAD2: dict[str, Any] = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as in RoBERTa's vocabulary
MODEL_MAX_LENGTH = 512
_DONE = ".complete"  # written last: a half-built directory from an interrupted run is rebuilt


def train_tokenizer(corpus: Iterable[str], vocab_size: int = ROBERTA_BASE_SQUAD2["vocab_size"]) -> Tokenizer:
    """RoBERTa's tokenizer pipeline (byte-level, no prefix space, trimmed offsets) with a vocabulary learnt
    from ``corpus``; training stops early when the corpus runs out of merges, which leaves ids unused."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True,
        add_prefix_space=False,
    )  # fmt: skip
    return tok


def _save_tokenizer(tok: Tokenizer, path: Path) -> None:
    """Saved by transformers 5, declared as ``RobertaTokenizer`` like the real model's tokenizer_config, so
    transformers 4.x (the seeds' recipe) loads it as ``RobertaTokenizerFast`` from tokenizer.json."""
    from transformers import PreTrainedTokenizerFast

    names = ("bos", "eos", "cls", "sep", "pad", "unk", "mask")
    tokens = ("<s>", "</s>", "<s>", "</s>", "<pad>", "<unk>", "<mask>")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        model_input_names=["input_ids", "attention_mask"],
        **{f"{n}_token": t for n, t in zip(names, tokens, strict=True)},
    )
    fast.save_pretrained(path)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "RobertaTokenizer"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def build_roberta_base(path: Path, corpus: Iterable[str], *, seed: int = 0) -> Path:
    """Writes the model directory (safetensors, config, tokenizer.json); reuses one already complete."""
    path = Path(path)
    if (path / _DONE).is_file():
        return path
    import torch
    from transformers import RobertaConfig, RobertaForQuestionAnswering

    path.mkdir(parents=True, exist_ok=True)
    _save_tokenizer(train_tokenizer(corpus), path)
    torch.manual_seed(seed)
    config = RobertaConfig(**ROBERTA_BASE_SQUAD2, architectures=["RobertaForQuestionAnswering"])
    model = RobertaForQuestionAnswering(config).eval()
    model.save_pretrained(path, safe_serialization=True)
    (path / _DONE).write_text("ok\n", encoding="utf-8")
    return path
