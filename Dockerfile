# Extractive-QA Lambda function as a container image. One runtime target per inference backend:
#   torch (also the default target)       docker buildx build --provenance=false --target torch -t qa:torch .
#   onnx  (no torch/transformers, small)  docker buildx build --provenance=false --target onnx  -t qa:onnx .
# Each target sets QA_BACKEND, so an image always runs the backend it carries. No model is baked in: the
# function downloads it from S3 at init (MODEL_S3_URI). Optional, for users who want no S3 at run time:
#   docker buildx build --provenance=false --target baked --build-arg VARIANT=onnx --build-arg MODEL_SRC=model .
# copies a model directory (Hugging Face layout, or a copy of a published prefix) from the build context;
# .dockerignore admits `model/` for that. BuildKit builds only the stages the chosen target needs.

# The runtime stage `baked` extends (torch | onnx): declared before the first FROM so that FROM can use it.
ARG VARIANT=torch

# ---- deps shared by both variants: the ONNX runtime set (no torch) --------------------------------------
FROM public.ecr.aws/lambda/python:3.12 AS runtime-base

# Lambda's filesystem is read-only except /tmp: every cache a library may write goes there. The model is
# always loaded from a local directory, so the Hugging Face hub is never contacted at run time.
ENV HF_HOME=/tmp/huggingface \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MODEL_DIR=/tmp/models \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR ${LAMBDA_TASK_ROOT}

# Dependency layers first: they change rarely, so code edits rebuild only the last, small layer.
COPY requirements-onnx.txt ./
RUN pip install --no-cache-dir -r requirements-onnx.txt

# ---- onnx: ONNX Runtime only (QA_BACKEND=onnx never imports torch or transformers) -----------------------
FROM runtime-base AS onnx
ENV QA_BACKEND=onnx
COPY handler/ ./handler/
# Bytecode compiled at build time: /var/task is read-only on Lambda, so it could not be cached at init.
RUN python -m compileall -q handler
CMD ["handler.app.lambda_handler"]

# ---- torch: adds CPU-only torch + transformers on top of the shared deps ---------------------------------
FROM runtime-base AS torch
# PyTorch's CPU wheel index: PyPI's Linux torch wheels pull GBs of CUDA libraries a Lambda cannot use.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.txt ./
# torch alone from the CPU index (its version taken from requirements.txt, the single pin), without deps;
# then everything else, torch's own dependencies included, from PyPI: the installed torch satisfies the pin.
RUN grep -E '^torch==' requirements.txt > /tmp/torch-pin.txt \
    && pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" -r /tmp/torch-pin.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && rm /tmp/torch-pin.txt
ENV QA_BACKEND=torch
COPY handler/ ./handler/
RUN python -m compileall -q handler
CMD ["handler.app.lambda_handler"]

# ---- baked (optional): a runtime stage plus a model directory, so the function needs no S3 --------------
FROM ${VARIANT} AS baked
ARG MODEL_SRC=model
COPY ${MODEL_SRC}/ /opt/model/
ENV MODEL_LOCAL_PATH=/opt/model
CMD ["handler.app.lambda_handler"]

# ---- default target (a build without --target): the torch image ------------------------------------------
FROM torch AS default
