#!/usr/bin/env bash
# Starts the local services the test suite talks to (PostgreSQL on
# 127.0.0.1:5432 with trust authentication), if they are not running yet.
set -euo pipefail
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "services: PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }
