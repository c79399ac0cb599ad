#!/usr/bin/env bash
# Make this machine ready for distrodebug: a running Docker engine, the tools the offline image
# builders use (static busybox, gcc, apt-get download), and the package with its test extras.
# Idempotent: a second run only checks. Debian/Ubuntu, as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -x /bin/busybox ] || missing+=(busybox-static)
# Signed bundles are checked against the real `ssh-keygen -Y verify` in the tests.
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# dump --memory's tests open the cores it writes with real gdb and readelf.
command -v gdb >/dev/null 2>&1 || missing+=(gdb)
command -v gdb-multiarch >/dev/null 2>&1 || missing+=(gdb-multiarch)  # aarch64 cores
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
if [ "${DISTRODEBUG_WITH_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
# The Podman test lane (DISTRODEBUG_ENGINES containing podman): Debian's podman; the lane starts
# its own service with tests/fixtures/podman/containers.conf.
# tests/podman/ also runs a rootless service as an unprivileged user of its own (made below),
# which needs newuidmap (uidmap) and user-mode networking (slirp4netns).
podman_lane=0
case ",${DISTRODEBUG_ENGINES:-docker}," in
  *,podman,*) podman_lane=1 ;;
esac
if [ "$podman_lane" = 1 ]; then
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
  command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# apt-get download (used to build the distroless demo image) needs package lists.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  as_root apt-get update -qq
fi

# The rootless Podman tests' user: useradd gives it subordinate uid and gid ranges (Debian's
# login.defs), which rootless Podman maps its containers' users into.
if [ "$podman_lane" = 1 ] && ! id distrodebug-rootless >/dev/null 2>&1; then
  echo "setup: adding the user distrodebug-rootless (rootless Podman tests)" >&2
  as_root useradd --create-home --shell /usr/sbin/nologin distrodebug-rootless
fi
grep -q '^distrodebug-rootless:' /etc/subuid 2>/dev/null || [ "$podman_lane" = 0 ] || {
  echo "setup: distrodebug-rootless has no range in /etc/subuid; rootless Podman needs one" >&2
  exit 1
}

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd" >&2
  as_root sh -c 'nohup dockerd >/var/log/dockerd-distrodebug.log 2>&1 &'
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/dockerd-distrodebug.log" >&2; exit 1; }
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,dev]" 2>&1 | grep -v -i "warning" || true
python3 -c "import distrodebug, docker, pexpect" || { echo "setup: the package did not install" >&2; exit 1; }
