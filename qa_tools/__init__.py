"""Build-time and developer tooling, kept out of the serving image: publishing a model (variants, the fidelity
gate, ONNX export and int8 quantization), running the function locally without Docker, bulk jobs, SQuAD scoring.
Imports the serving package, never the reverse. docs/architecture.md has one row per module."""

from pathlib import Path

# The small real model the repository ships (models/minilm-l6-squad, its README is the model card): the
# default of the demo and the bulk runner, so a fresh clone answers offline. Production serves a larger one,
# e.g. deepset/roberta-base-squad2, given as an argument.
EMBEDDED_MODEL = Path(__file__).resolve().parent.parent / "models" / "minilm-l6-squad"
