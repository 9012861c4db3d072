# syntax=docker/dockerfile:1
# Qorgau's server image: every `qorgau` service (ingest, alerts, api, db upgrade, devices, sim)
# from one image; docker-compose.yml picks the subcommand. Build: docker build -t qorgau .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder
# Builds the wheel and installs it with the server extras into a self-contained venv, so the
# final stage needs neither the sources nor pip's caches. The venv lives at the same path in
# both stages because its scripts' shebangs hold that path.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/qorgau
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qorgau ./qorgau
COPY vocabulary ./vocabulary
COPY analytics ./analytics
COPY edge ./edge
COPY firmware_sim ./firmware_sim
COPY ingest ./ingest
COPY store ./store
COPY application ./application
COPY api ./api
COPY dashboards ./dashboards
# A wheel first (not an editable or in-tree install): what ends up in the venv is exactly the
# packaged modules and package data (norms, SQL, the dashboard's static files).
RUN /opt/qorgau/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/qorgau/bin/pip install "$(ls /wheels/qorgau-*.whl)[server]" \
    && /opt/qorgau/bin/qorgau --version

# ---------------------------------------------------------------- final
FROM ${PYTHON_IMAGE}
# A fixed uid/gid, so that file ownership on volumes (edge outboxes, shared secrets) means
# the same thing across rebuilds and hosts.
ARG QORGAU_UID=10001
ARG QORGAU_GID=10001
RUN groupadd --system --gid "${QORGAU_GID}" qorgau \
    && useradd --system --uid "${QORGAU_UID}" --gid qorgau --home-dir /var/lib/qorgau \
        --create-home --shell /usr/sbin/nologin qorgau
COPY --from=builder /opt/qorgau /opt/qorgau
ENV PATH=/opt/qorgau/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    QORGAU_LOG_FORMAT=json
WORKDIR /var/lib/qorgau
USER ${QORGAU_UID}:${QORGAU_GID}
# 8000: qorgau api; 9101/9102: ingest and alerts metrics (as docker-compose.yml sets them).
EXPOSE 8000 9101 9102
ENTRYPOINT ["qorgau"]
CMD ["--help"]
