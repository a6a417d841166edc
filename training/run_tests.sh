#!/usr/bin/env bash
# Runs the training recipe's unit tests (CSXA loader, imaging, windowing).
# Exits non-zero on failure; prints the unittest summary.
set -euo pipefail
cd "$(dirname "$0")"
exec /usr/bin/python3 -m unittest discover -s tests -p "test_*.py" -v "$@"
