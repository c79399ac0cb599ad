#!/usr/bin/env bash
# Install what distrodebug needs on a fresh Debian machine, then run its demo on a distroless app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec distrodebug demo "$@"
