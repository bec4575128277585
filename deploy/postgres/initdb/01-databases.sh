#!/usr/bin/env bash
# Run once by the postgres image's entrypoint, on the first start with an empty data volume
# (/docker-entrypoint-initdb.d), as POSTGRES_USER (the administrator, which no app uses).
# Makes one role per app, owning only its own database: databases.psql, with each role's password
# from the secret file /run/secrets/<APP>_DB_PASSWORD (deploy/compose_secrets.py), or from the
# variable <APP>_DB_PASSWORD where one is set. Each app creates its own tables at start (alembic).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]:-$0}")"
secrets="${SECRETS_DIR:-/run/secrets}"

password() {  # password GATEWAY → the gateway role's password
    local name="$1_DB_PASSWORD"
    if [ -n "${!name:-}" ]; then
        printf '%s' "${!name}"
    elif [ -s "$secrets/$name" ]; then
        tr -d '[:space:]' < "$secrets/$name"
    else
        echo "01-databases.sh: $name is neither a variable nor a file in $secrets" >&2
        return 1
    fi
}

gateway_password="$(password GATEWAY)"
catalog_password="$(password CATALOG)"
orders_password="$(password ORDERS)"
notify_password="$(password NOTIFY)"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v gateway_password="$gateway_password" \
    -v catalog_password="$catalog_password" \
    -v orders_password="$orders_password" \
    -v notify_password="$notify_password" \
    -f "$here/databases.psql"
