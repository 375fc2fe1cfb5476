"""Build-time and developer tooling, kept out of the serving image: publish a model (normalise, build each
variant, upload with a manifest) and export ONNX variants. Imports the serving package, never the reverse."""
