#!/usr/bin/env bash
# Run the whole test suite against the real Docker engine (set up first when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
DISTRODEBUG_WITH_BROWSER=1 bash scripts/setup.sh
exec python3 -m pytest -q -rs -p no:cacheprovider "$@"
