#!/usr/bin/env bash
# The whole test suite: lint and types, then pytest against the real Docker engine and the real
# one-node Kubernetes cluster (scripts/cluster.sh builds it on first use, ~10 min, then reuses
# it), rootless Podman (tests/podman/), and the Podman lane: the engine tests again on a rootful
# Podman service. DISTRODEBUG_ENGINES=docker leaves Podman out (setup.sh then installs none).
# DISTRODEBUG_NO_CLUSTER=1 skips the cluster for a quick local run (its tests then skip, except
# where DISTRODEBUG_REQUIRE_CLUSTER=1 turns that into a failure, as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
export DISTRODEBUG_ENGINES="${DISTRODEBUG_ENGINES:-docker,podman}"
DISTRODEBUG_WITH_BROWSER=1 bash scripts/setup.sh
echo "test: ruff check" >&2
python3 -m ruff check distrodebug tests benchmarks
echo "test: mypy --strict" >&2
python3 -m mypy
if [ "${DISTRODEBUG_NO_CLUSTER:-0}" != 1 ]; then
  echo "test: Kubernetes cluster (build or reuse, start)" >&2
  bash scripts/cluster.sh up
fi
python3 -m pytest -q -rs -p no:cacheprovider "$@"
# The Podman lane: the engine tests again, against a Podman service the tests start
# (setup.sh installs podman when DISTRODEBUG_ENGINES names it). Only for the whole suite: a run
# given pytest arguments (a subset) stops here.
[ $# -eq 0 ] || exit 0
case ",${DISTRODEBUG_ENGINES}," in
  *,podman,*)
    echo "test: Podman lane" >&2
    python3 -m pytest -q -rs -p no:cacheprovider --engine podman tests/docker ;;
esac
