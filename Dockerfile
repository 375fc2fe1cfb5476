# Extractive-QA Lambda function as a container image. One runtime target per inference backend:
#   onnx  (the default: ONNX Runtime only, fits Lambda's 10 s init)  docker buildx build --provenance=false --target onnx -t qa:onnx .
#   torch (transformers on PyTorch CPU, the reference)               docker buildx build --provenance=false --target torch -t qa:torch .
# Each target sets QA_BACKEND, so an image always runs the backend it carries. No model is baked in: the
# function downloads it from S3 at init (MODEL_S3_URI). Optional, for users who want no S3 at run time:
#   docker buildx build --provenance=false --target baked --build-arg VARIANT=onnx --build-arg MODEL_SRC=model .
# copies a model directory (Hugging Face layout, or a copy of a published prefix) from the build context;
# .dockerignore admits `model/` for that. Needs BuildKit (COPY --chmod; `sam build` with use_buildkit), which
# builds only the stages the chosen target needs.
# Dependencies come from lock files (every package pinned, every file's sha256: bash scripts/lock.sh) as
# wheels only; torch alone comes from PyTorch's CPU index, pinned in requirements-torch.txt.

# The runtime stage `baked` extends (torch | onnx): declared before the first FROM so that FROM can use it.
ARG VARIANT=onnx

# ---- shared base: the Lambda Python runtime and where libraries may write -------------------------------
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

# ---- onnx: ONNX Runtime only (QA_BACKEND=onnx never imports torch or transformers) -----------------------
FROM runtime-base AS onnx
# Dependency layer first: it changes rarely, so code edits rebuild only the last, small layers.
COPY requirements-onnx.lock ./
RUN pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: -r requirements-onnx.lock
ENV QA_BACKEND=onnx
# Readable by the non-root user Lambda runs the function as, whatever the mode of the files in the checkout.
COPY --chmod=755 handler/ ./handler/
# Bytecode compiled at build time: /var/task is read-only on Lambda, so it could not be cached at init.
RUN python -m compileall -q handler
CMD ["handler.app.lambda_handler"]

# ---- torch: CPU-only torch + transformers on top of the ONNX runtime set ---------------------------------
FROM runtime-base AS torch
# PyTorch's CPU wheel index: PyPI's Linux torch wheels pull GBs of CUDA libraries a Lambda cannot use.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# torch alone, in its own layer (only its own pin file is copied), so a change to any other pin does not
# download it again; its dependencies are in requirements.lock.
COPY requirements-torch.txt ./
RUN pip install --no-cache-dir --no-deps --only-binary=:all: --index-url "${TORCH_INDEX_URL}" -r requirements-torch.txt
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: -r requirements.lock
ENV QA_BACKEND=torch
COPY --chmod=755 handler/ ./handler/
RUN python -m compileall -q handler
CMD ["handler.app.lambda_handler"]

# ---- baked (optional): a runtime stage plus a model directory, so the function needs no S3 --------------
FROM ${VARIANT} AS baked
ARG MODEL_SRC=model
COPY --chmod=755 ${MODEL_SRC}/ /opt/model/
ENV MODEL_LOCAL_PATH=/opt/model
CMD ["handler.app.lambda_handler"]

# ---- default target (a build without --target): the onnx image, as deployed by default -------------------
FROM onnx AS default
