#!/usr/bin/env bash
# The whole test suite: lint and types, then pytest against the real Docker engine and the real
# one-node Kubernetes cluster, then (DISTRODEBUG_ENGINES=docker,podman) the engine tests on Podman (scripts/cluster.sh builds it on first use, ~10 min, then reuses
# it). DISTRODEBUG_NO_CLUSTER=1 skips the cluster for a quick local run (its tests then skip,
# except where DISTRODEBUG_REQUIRE_CLUSTER=1 turns that into a failure, as CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
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
# (DISTRODEBUG_ENGINES=docker,podman; setup.sh installs podman when it is named).
case ",${DISTRODEBUG_ENGINES:-docker}," in
  *,podman,*)
    echo "test: Podman lane" >&2
    python3 -m pytest -q -rs -p no:cacheprovider --engine podman tests/docker ;;
esac
