# syntax=docker/dockerfile:1
# The torch-free runtime and `confroute serve`: onnxruntime + tokenizers + numpy + the serve
# extra, no torch or transformers. Build: docker build -t confroute .
# Run: docker run -p 127.0.0.1:8000:8000 -v "$PWD/runs/demo/artifact:/artifact:ro" \
#        -e CONFROUTE_TOKEN -e CONFROUTE_EDGE_BASE_URL ... confroute
# EXTRAS adds extras to the image (e.g. --build-arg EXTRAS=serve,log for a decision log driver).
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY confroute ./confroute
ARG EXTRAS=serve
# Every wheel the image needs, built once; the final stage installs them without an index.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

FROM python:${PYTHON}-slim
ARG EXTRAS=serve
# Nothing leaves the container unless configured (see docs/privacy.md): the same switches
# `import confroute` sets, here for any process in the image.
ENV ORT_DISABLE_TELEMETRY=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    HF_HUB_OFFLINE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin confroute
# No version pins here: /wheels holds exactly the versions the first stage resolved, and pip may
# not look anywhere else (--no-index).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "confroute[${EXTRAS}]"
USER 10001
WORKDIR /home/confroute
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# The artifact is mounted read-only at /artifact; settings come from CONFROUTE_* variables or
# `--config` (append arguments to `docker run ... confroute`).
ENTRYPOINT ["confroute", "serve", "/artifact", "--host", "0.0.0.0", "--port", "8000"]
