# s2cube worker / driver image (CPU). Build from the repository root:
#   docker build -t ghcr.io/s2cube/s2cube:0.1.0 .
# Used by cluster/kubernetes/*.yaml, cluster/coiled_run.py (--container) and
# cluster/gateway_run.py (--image). Installs the pyproject extras ml, serve and s3; torch is
# the CPU wheel from PyTorch's own index (a looser pin would pull CUDA wheels).
FROM python:3.12-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    GDAL_HTTP_MAX_RETRY=5 \
    GDAL_HTTP_RETRY_DELAY=1

RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/s2cube
COPY pyproject.toml README.md ./
COPY s2cube ./s2cube
# DL3013: "." is this checkout (its version is the commit); the extras pin their own deps
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[ml,serve,s3]" \
    && useradd --create-home --uid 1000 dask

USER 1000
WORKDIR /home/dask
EXPOSE 8786 8787 8000
# dask-kubernetes and the Helm chart give their own command (dask scheduler / dask worker)
CMD ["s2cube", "--help"]
