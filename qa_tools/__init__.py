"""Build-time and developer tooling, kept out of the serving image: publishing a model (variants, the fidelity
gate, ONNX export and int8 quantization), running the function locally without Docker, bulk jobs, SQuAD scoring.
Imports the serving package, never the reverse. docs/architecture.md has one row per module."""
