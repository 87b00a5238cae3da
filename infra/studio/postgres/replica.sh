#!/bin/bash
# The streaming replica: on first start a base backup of the primary with -R (standby.signal
# and primary_conninfo written), then PostgreSQL in hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pg_basebackup -h postgres -U replicator -D "$PGDATA" -R -X stream --checkpoint=fast
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
