#!/usr/bin/env bash
# The whole test suite: lint and types, then pytest against the real Docker engine (and the
# real one-node Kubernetes cluster, when DISTRODEBUG_WITH_CLUSTER=1 or in CI), set up first.
set -euo pipefail
cd "$(dirname "$0")/.."
DISTRODEBUG_WITH_BROWSER=1 bash scripts/setup.sh
echo "test: ruff check" >&2
python3 -m ruff check distrodebug tests benchmarks
echo "test: mypy --strict" >&2
python3 -m mypy
exec python3 -m pytest -q -rs -p no:cacheprovider "$@"
