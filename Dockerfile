# syntax=docker/dockerfile:1
# One image for every process of the Procfile: `kustom-process NAME` runs the Procfile's
# line NAME (web by default). docker-compose.yml and deploy/kubernetes/ pick the process.
#
#   docker build -t kustom-app .                        the production image (the last stage)
#   docker build --target playground -t kustom-app:playground .
#                                                       the same plus the local test doubles
#   docker run -p 8000:8000 -e REDIS_URL=... kustom-app
#   docker run -e REDIS_URL=... kustom-app kustom-process worker
#
# The root filesystem may be read-only (Kubernetes): everything the processes write goes to
# /tmp (gunicorn's heartbeat files, the metrics directory, beat's schedule).

# --- base: Python, tini and the locked dependencies ----------------------------------------
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The user is app (uid 10001): numeric in USER, so Kubernetes' runAsNonRoot can check it.
# tini as PID 1: it reaps orphans and hands SIGTERM to the process, under plain `docker
# run` and Kubernetes alike (compose's `init: true` adds docker's own; -s keeps tini quiet
# and reaping when it is not PID 1 there).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app

WORKDIR /app

# Dependencies first, pinned with their hashes (requirements.lock, from pyproject.toml), so
# a code change reuses this layer and a build installs exactly what was locked.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# The Procfile's runner and the healthcheck: standard-library scripts, on PATH.
COPY --chmod=0755 deploy/docker/kustom_process.py /usr/local/bin/kustom-process
COPY --chmod=0755 deploy/docker/kustom_healthcheck.py /usr/local/bin/kustom-healthcheck

# The Procfile and gunicorn's settings (the web line's gunicorn reads ./gunicorn.conf.py:
# the metrics directory and the child_exit hook).
COPY pyproject.toml Procfile gunicorn.conf.py ./
COPY kustom_app ./kustom_app
COPY webhooks ./webhooks
COPY workers ./workers
# The JSON Schemas that GET /openapi.json embeds (webhooks/openapi.py reads them here).
COPY schemas ./schemas

ENV PORT=8000 \
    FLOWER_PORT=5555
# web, flower, the worker's metrics and beat's.
EXPOSE 8000 5555 9540 9541

# Without a name: the first of web, worker, beat, flower whose port takes a connection.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["kustom-healthcheck"]

ENTRYPOINT ["tini", "-s", "--"]
CMD ["kustom-process", "web"]

# --- playground: the service with the local test doubles (playground/) --------------------
# Never deployed: for docker-compose setups that run the local Kustom and shop stand-ins.
FROM base AS playground
COPY playground ./playground
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf build *.egg-info
USER 10001:10001

# --- production: the service alone (the default target) -----------------------------------
FROM base AS production
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf build *.egg-info
USER 10001:10001
