# One image for every process of the Procfile; docker-compose.yml picks the process with
# `command:`. Build: docker build -t kustom-app .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY kustom_app ./kustom_app
COPY webhooks ./webhooks
COPY workers ./workers
COPY playground ./playground
# The JSON Schemas that GET /openapi.json embeds (webhooks/openapi.py reads them here).
COPY schemas ./schemas
COPY Procfile ./
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/app app

USER app

ENV PORT=8000 \
    FLOWER_PORT=5555
EXPOSE 8000 5555

# The Procfile's web line; compose overrides it per service.
CMD ["honcho", "start", "--no-colour", "-e", "/dev/null", "-f", "Procfile", "web"]
