#!/bin/sh
# Ingest benchmark: DCMTK storescu sends 500 small (256x256x16 bit) and 50
# large (2560x2048x16 bit) instances over one association to our node
# (SpoolStore, fsync of every file and directory) and to DCMTK storescp
# (no fsync), both writing to the same disk, in the same run.
# Prints the benchmark lines and the ratios cspine/storescp (>1: we are faster).
# Usage: dicomnode/bench/run.sh [iterations]   (default 3)
set -eu
cd "$(dirname "$0")/../.."
n="${1:-3}"
out=$(go test ./dicomnode/bench -run '^$' -bench 'BenchmarkIngest' -benchtime "${n}x" -count 1 -timeout 60m)
echo "$out"
echo "$out" | awk '
/^BenchmarkIngest\// {
	split($1, p, "/"); w = p[2]; r = p[3]; sub(/-[0-9]+$/, "", r)
	for (i = 2; i <= NF; i++) if ($i == "images/s") ips[w, r] = $(i - 1)
}
END {
	split("small large", ws, " ")
	for (k = 1; k <= 2; k++) {
		w = ws[k]
		if ((w, "cspine") in ips && (w, "storescp") in ips)
			printf "%s: cspine %.1f images/s, storescp %.1f images/s, ratio %.2f (ceiling without fsync: %.1f images/s, ratio %.2f)\n", w, ips[w, "cspine"], ips[w, "storescp"], ips[w, "cspine"] / ips[w, "storescp"], ips[w, "cspine-nofsync"], ips[w, "cspine-nofsync"] / ips[w, "storescp"]
	}
}'
