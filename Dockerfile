# syntax=docker/dockerfile:1
# Reproducible: the base image pinned by digest (refresh it with
# `docker buildx imagetools inspect python:3.11-slim`), every dependency pinned with its
# hashes in requirements.lock (`make lock`), the package itself built without fetching.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/outpost \
    && /opt/outpost/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY outpost ./outpost
RUN /opt/outpost/bin/pip install --no-deps --no-build-isolation --no-index .

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 outpost \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin outpost
COPY --from=build /opt/outpost /opt/outpost
# HEALTH_PORT: the probe port (/healthz, /readyz) on the container's loopback, for the
# HEALTHCHECK below; Kubernetes sets HEALTH_HOST to the pod's IP for the kubelet.
ENV PATH=/opt/outpost/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_HOST=127.0.0.1 \
    HEALTH_PORT=8081
USER 10001:10001
EXPOSE 3333
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['HEALTH_PORT'], timeout=3)"]
ENTRYPOINT ["outpost"]
CMD ["all"]
