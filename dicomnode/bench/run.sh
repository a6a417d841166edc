#!/bin/sh
# Ingest benchmark: DCMTK storescu sends 500 small (256x256x16 bit) and 50
# large (2560x2048x16 bit) instances over one association to
#   cspine    our node as cspine serve runs it: ingest.Handler with a
#             PostgreSQL database (scratch database on 127.0.0.1:5432, see
#             store/storetest); durable on disk and recorded before success;
#   spool     our node with services.SpoolStore only (durable, no database);
#   storescp  DCMTK storescp, default options (no fsync);
#   nofsync   our node without any fsync (not durable; the ceiling set by
#             the sender),
# all writing to the same disk, interleaved in one run. "ratio" is
# cspine/storescp images per second (1.0 or more: we are at least as fast).
# Usage: dicomnode/bench/run.sh [iterations]   (default 3)
set -eu
cd "$(dirname "$0")/../.."
n="${1:-3}"
go test ./dicomnode/bench -run '^$' -bench 'BenchmarkIngest' -benchtime "${n}x" -count 1 -timeout 60m
