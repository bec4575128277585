#!/usr/bin/env bash
# Run once by the postgres image's entrypoint, on the first start with an empty data volume
# (/docker-entrypoint-initdb.d), as POSTGRES_USER (the administrator, which no app uses).
# Makes one role per app, owning only its own database: databases.psql, with each role's password
# from <APP>_DB_PASSWORD. Each app creates its own tables at start (alembic migrations).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]:-$0}")"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v gateway_password="${GATEWAY_DB_PASSWORD:?GATEWAY_DB_PASSWORD is not set}" \
    -v catalog_password="${CATALOG_DB_PASSWORD:?CATALOG_DB_PASSWORD is not set}" \
    -v orders_password="${ORDERS_DB_PASSWORD:?ORDERS_DB_PASSWORD is not set}" \
    -v notify_password="${NOTIFY_DB_PASSWORD:?NOTIFY_DB_PASSWORD is not set}" \
    -f "$here/databases.psql"
