"""Per-token int8 on ONNX Runtime's QGEMM kernel (qa_tools.per_token): the int8 default on CPUs with int8 dot
products (AMX, AVX-512 VNNI, AVX-VNNI), where QGEMM is the fast int8 kernel and ``MatMulNBits`` is not.

Every weight MatMul runs on QGEMM: each token's activations get their own scale, outlier channels are migrated
into the weights (SmoothQuant-style, calibrated on ``qa_tools/calibration``), and GELU outputs use the unsigned
grid. Publish measures it against onnx-fp32 like ``onnx-int8`` (docs/performance.md and docs/int8-recipes.md
have the figures per CPU).
"""

from handler.variants import Variant

VARIANT = Variant(
    name="onnx-int8-qgemm",
    backend="onnx",
    precision="int8-qgemm",
    weights=(r"model\.int8-qgemm\.onnx(_data|\.data)?",),
    weight_file="model.int8-qgemm.onnx",
    loader="handler.backends.onnx_backend:load",
    builder="qa_tools.quantize:build_int8_qgemm",
    reference="onnx-fp32",
    preferred_on=("amx_int8", "avx512_vnni", "avx_vnni"),
)
