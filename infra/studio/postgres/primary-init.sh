#!/bin/bash
# First start of the primary (postgres image's /docker-entrypoint-initdb.d): Bifrost's roles
# (infra/database/roles.sql) with their passwords, Prefect's own database, the replication role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -d bifrost -f /bifrost/roles.sql \
    -v migrator_password="$DB_MIGRATOR_PASSWORD" -v api_password="$DB_API_PASSWORD" \
    -v worker_password="$DB_WORKER_PASSWORD" -v reader_password="$DB_READER_PASSWORD"
psql -v ON_ERROR_STOP=1 -U postgres -d postgres \
    -v prefect_password="$DB_PREFECT_PASSWORD" -v replication_password="$DB_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER prefect;
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'replication_password';
SQL
# The replica streams as `replicator` from the data network; everything else needs a password.
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
