"""Dynamic int8 (activations quantized per tensor): the fastest int8, but near-tied answers may flip.

Opt-in (``QA_ONNX_PRECISION=int8-fast``): publish builds it only when ``--variants`` names it, and uploads it
below the fidelity threshold only with ``--allow-lossy``.
"""

from handler.variants import Variant

VARIANT = Variant(
    name="onnx-int8-fast",
    backend="onnx",
    precision="int8-fast",
    weights=(r"model\.int8-fast\.onnx(_data|\.data)?",),
    weight_file="model.int8-fast.onnx",
    loader="handler.backends.onnx_backend:load",
    builder="qa_tools.quantize:build_int8_fast",
    reference="onnx-fp32",
    published_by_default=False,
)
