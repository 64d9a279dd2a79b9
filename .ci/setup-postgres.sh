#!/bin/sh
# Debian's PostgreSQL for the shared-ledger tests (tests/scale/test_shared_postgres.py); never a
# downloaded one. The tests run their own cluster as a child (initdb + postgres in a temp dir,
# tests/pg_cluster.py), so the packaged service is not needed and is not started here.
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends postgresql libpq5
ls -d /usr/lib/postgresql/*/bin
