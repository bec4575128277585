# syntax=docker/dockerfile:1
#
# One image for the four Chợ Vườn apps; the command chooses which one runs:
#
#   docker run … cho-vuon python -m gateway serve
#   docker run … cho-vuon python -m services.catalog serve
#   docker run … cho-vuon python -m services.orders serve
#   docker run … cho-vuon python -m services.notify serve
#
# `python -m <app> migrate` applies an app's migrations alone (serve applies them at start too).
# docker-compose.yml is the production shape that uses it; docs/operations.md explains both.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the locked dependencies and the project (not editable) ---------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from the lock alone, so that this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes -r requirements.lock

# Then the project itself: its packages (with each app's migrations) into site-packages.
COPY pyproject.toml ./
COPY common ./common
COPY gateway ./gateway
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps . \
 && cd / && python -c "import gateway.__main__, services.catalog.__main__, services.orders.__main__, services.notify.__main__"

# --- runtime: the virtualenv, a non-root user, nothing else -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# In a container an app must listen on every interface, not on the loopback default (127.0.0.1).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    CATALOG_HOST=0.0.0.0 \
    ORDERS_HOST=0.0.0.0 \
    NOTIFY_HOST=0.0.0.0

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv

# The code is read-only to the app user (root owns /opt/venv). /app/var holds the SQLite files of
# the embedded default, used when no <PREFIX>DATABASE_URL is given, and the catalog's photo files
# (var/media: made here so that a volume mounted on it starts owned by the app user).
WORKDIR /app
RUN mkdir -p /app/var/media && chown -R app:app /app/var

USER app:app

# gateway 8000, catalog 8001, orders 8002, notify 8003 (each app's default <PREFIX>PORT).
EXPOSE 8000 8001 8002 8003

# No HEALTHCHECK here: the port depends on which app the container runs, so each service in
# docker-compose.yml declares its own (python + urllib against /readyz).
CMD ["python", "-m", "gateway", "serve"]
