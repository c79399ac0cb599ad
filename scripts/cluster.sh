#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, for the test-suite.
#
#   scripts/cluster.sh build          build the components once (cached, keyed by version)
#   scripts/cluster.sh up             build-or-reuse, start everything, wait for the node to be Ready
#   scripts/cluster.sh load IMAGE...  copy local Docker images into the cluster's containerd
#   scripts/cluster.sh env            eval "$(scripts/cluster.sh env)": KUBECONFIG, PATH (kubectl)
#   scripts/cluster.sh status         what runs, and whether the node is Ready
#   scripts/cluster.sh down [--purge] stop everything, leave no process, mount, link or rule behind
#
# What runs (all as root, all bound to 127.0.0.1 or to our own bridge):
#   etcd                  127.0.0.1:23790 (client), 127.0.0.1:23800 (peer), plain HTTP on loopback
#   kube-apiserver        https://127.0.0.1:16443
#   kube-controller-manager 127.0.0.1:10357, kube-scheduler 127.0.0.1:10359 (their own healthz)
#   containerd            its own instance: unix socket /run/distrodebug-cluster/containerd/containerd.sock
#   kubelet               node "dd-node", 10.244.0.1:10350 (healthz 127.0.0.1:10348)
#   pods                  bridge dd-cni0, 10.244.0.0/24, no default route out of the pod network
# No kube-proxy and no cluster DNS: the tests use neither.
#
# Layout:
#   ${XDG_CACHE_HOME:-~/.cache}/distrodebug/cluster/  built binaries and the pause image (kept)
#   /var/lib/distrodebug-cluster/                     data; pki/, kubeconfig and the image store
#                                                     survive `down` (so the kubeconfig stays valid
#                                                     and loaded images stay loaded); --purge wipes
#   /var/lib/distrodebug-cluster/logs/                one log per component (previous run: logs/previous/)
#   /run/distrodebug-cluster/                         pids, sockets, containerd state, pod netns
#
# Requires: root, Go >= 1.24 (for `build`), Debian/Ubuntu (missing host packages are installed
# with apt-get). Docker is only needed for `load`.
set -euo pipefail

# ---------------------------------------------------------------- versions
K8S_VERSION=1.34.4
ETCD_VERSION=3.6.16      # the etcd line that Kubernetes 1.34 is tested with (3.6.x)
CRICTL_VERSION=1.34.0    # used by `down` to stop pods through the CRI (so CNI DEL runs)

# ---------------------------------------------------------------- paths
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAUSE_SRC=$REPO/tests/fixtures/cluster/pause.c
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/distrodebug/cluster
K8S_DIR=$CACHE/build-k8s-$K8S_VERSION
ETCD_DIR=$CACHE/build-etcd-$ETCD_VERSION
CRICTL_DIR=$CACHE/build-crictl-$CRICTL_VERSION
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

DATA=/var/lib/distrodebug-cluster
RUN=/run/distrodebug-cluster
LOGS=$DATA/logs
PKI=$DATA/pki
KUBECONFIG_FILE=$DATA/kubeconfig
STATIC_PODS=$DATA/manifests
CTRD_ROOT=$DATA/containerd
CTRD_STATE=$RUN/containerd
CTRD_SOCK=$CTRD_STATE/containerd.sock
CTRD_CONFIG=$RUN/containerd-config.toml
CNI_CONF_DIR=$RUN/cni/net.d           # private: not /etc/cni/net.d, so nothing else picks it up
CNI_IPAM_DIR=$RUN/cni/ipam            # host-local allocations (default /var/lib/cni would outlive down)
CNI_BIN_DIR=/usr/lib/cni              # Debian's containernetworking-plugins
KUBELET_ROOT=$DATA/kubelet
POD_LOGS=$DATA/pod-logs

# ---------------------------------------------------------------- network
NODE_NAME=dd-node
BRIDGE=dd-cni0
POD_SUBNET=10.244.0.0/24
# The node IP is the bridge's own address: kubelet refuses a loopback node IP, and this address
# exists only on our bridge, so apiserver->kubelet traffic never leaves the machine.
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
ETCD_PORT=23790
ETCD_PEER_PORT=23800
APISERVER_PORT=16443
CM_PORT=10357
SCHED_PORT=10359
KUBELET_PORT=10350
KUBELET_HEALTHZ_PORT=10348
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
# Anything that would pull an image goes to this dead proxy on loopback and fails at once: no
# DNS query and no connection to any registry (this machine has none, and must send nothing out).
DEAD_PROXY=http://127.0.0.1:9
FWD_COMMENT=distrodebug-cluster

# kubelet tunes these when it starts; `up` records the host's values and `down` puts them back.
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
         kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet)

# ---------------------------------------------------------------- helpers
log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

require_root() {
	[ "$(id -u)" -eq 0 ] || die "'$1' must run as root (it starts containerd and kubelet)"
}

# Install the host packages the cluster uses, only when something is missing.
ensure_host_packages() {
	local pkgs=()
	command -v containerd >/dev/null || pkgs+=(containerd)
	command -v ctr >/dev/null || pkgs+=(containerd)
	command -v runc >/dev/null || pkgs+=(runc)
	[ -x $CNI_BIN_DIR/bridge ] && [ -x $CNI_BIN_DIR/host-local ] && [ -x $CNI_BIN_DIR/loopback ] \
		&& [ -x $CNI_BIN_DIR/portmap ] || pkgs+=(containernetworking-plugins)
	command -v iptables >/dev/null || pkgs+=(iptables)
	command -v openssl >/dev/null || pkgs+=(openssl)
	command -v curl >/dev/null || pkgs+=(curl)
	command -v ip >/dev/null && command -v ss >/dev/null || pkgs+=(iproute2)
	command -v findmnt >/dev/null || pkgs+=(util-linux)
	command -v gcc >/dev/null || pkgs+=(gcc)
	[ -f "$(gcc -print-file-name=libc.a 2>/dev/null)" ] || pkgs+=(libc6-dev)  # for gcc -static
	[ ${#pkgs[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing host packages (${pkgs[*]}): run as root to install them"
	log "installing host packages: ${pkgs[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# ================================================================ build
# Each component is a Go module built from the Go module proxy into a temporary directory; the
# bin/ directory and its .complete stamp appear only once every binary is there and reports the
# expected version. A complete cache makes `build` a no-op.

go_env() {
	command -v go >/dev/null || die "Go is needed to build the cluster (go >= 1.24)"
	export CGO_ENABLED=0
	export GOTOOLCHAIN=local   # never download a toolchain: fail clearly instead
	export GOFLAGS="-mod=mod -buildvcs=false"
}

stamp_ok() { [ -f "$1/.complete" ] && [ "$(cat "$1/.complete")" = "$2" ]; }

# Write go.mod for a throw-away module that requires $2 (module@version) plus extra lines.
write_go_mod() {
	local dir=$1
	shift
	mkdir -p "$dir"
	{
		echo "module distrodebug.invalid/clusterbuild"
		echo
		echo "go 1.24.0"
		printf '%s\n' "$@"
	} >"$dir/go.mod"
}

# tools.go: blank imports of the main packages, so `go mod tidy` records all their dependencies.
write_tools_go() {
	local dir=$1
	shift
	{
		echo "//go:build tools"
		echo
		echo "package tools"
		echo
		echo "import ("
		printf '\t_ "%s"\n' "$@"
		echo ")"
	} >"$dir/tools.go"
}

# go mod tidy, its "go: downloading" chatter kept in a log that is shown only on failure.
go_mod_tidy() {
	(cd "$1" && go mod tidy) >"$1/tidy.log" 2>&1 || {
		tail -n 30 "$1/tidy.log" >&2
		die "go mod tidy failed in $1 (log: $1/tidy.log)"
	}
}

# go build one main package into $out, printing how long it took.
go_build_timed() {
	local name=$1 out=$2 pkg=$3 ldflags=$4 t
	t=$(now)
	go build -trimpath -ldflags "$ldflags" -o "$out/$name" "$pkg"
	log "built $name in $(since "$t")s"
}

k8s_version_ok() {
	local bin=$1 c out
	for c in "${K8S_BINS[@]}"; do
		[ -x "$bin/$c" ] || return 1
		if [ "$c" = kubectl ]; then
			out=$("$bin/kubectl" version --client 2>/dev/null) || return 1
		else
			out=$("$bin/$c" --version 2>/dev/null) || return 1
		fi
		# (no "cmd | grep -q" under pipefail: grep's early exit can fail the pipeline)
		[[ "$out" == *"v$K8S_VERSION"* ]] || return 1
	done
}

build_k8s() {
	local dir=$K8S_DIR stamp="k8s $K8S_VERSION ${K8S_BINS[*]}"
	stamp_ok "$dir" "$stamp" && return 0
	# A bin/ left by an earlier build without a stamp is adopted if every binary is the right one.
	if k8s_version_ok "$dir/bin"; then
		echo "$stamp" >"$dir/.complete"
		log "kubernetes v$K8S_VERSION: adopted the binaries already in $dir/bin"
		return 0
	fi
	go_env
	local t0 src=$dir/src out=$dir/bin.partial gomod m staging=() c
	t0=$(now)
	log "kubernetes v$K8S_VERSION: building ${K8S_BINS[*]} (cold: ~15 min on 2 cores)"
	# k8s.io/kubernetes points its staging modules (k8s.io/api, k8s.io/client-go, ...) at
	# ./staging; as a dependency those replaces are ignored, so map each to its v0.X.Y release.
	write_go_mod "$src" "require k8s.io/kubernetes v$K8S_VERSION"
	gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION"
	mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod" | sort -u)
	[ ${#staging[@]} -gt 10 ] || die "found no staging modules in $gomod"
	write_go_mod "$src" "require k8s.io/kubernetes v$K8S_VERSION" "" \
		"$(for m in "${staging[@]}"; do echo "replace $m => $m v0.${K8S_VERSION#1.}"; done)"
	write_tools_go "$src" "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}"
	go_mod_tidy "$src"
	local minor=${K8S_VERSION#1.}
	minor=${minor%%.*}
	local ld="-s -w"
	ld+=" -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
	ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
	ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
	ld+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
	rm -rf "$out"
	mkdir -p "$out"
	for c in "${K8S_BINS[@]}"; do
		(cd "$src" && go_build_timed "$c" "$out" "k8s.io/kubernetes/cmd/$c" "$ld")
	done
	k8s_version_ok "$out" || die "kubernetes binaries in $out do not report v$K8S_VERSION"
	rm -rf "${dir:?}/bin"
	mv "$out" "$dir/bin"
	echo "$stamp" >"$dir/.complete"
	log "kubernetes v$K8S_VERSION: done in $(since "$t0")s"
}

build_etcd() {
	local dir=$ETCD_DIR stamp="etcd $ETCD_VERSION"
	stamp_ok "$dir" "$stamp" && return 0
	go_env
	local t0 src=$dir/src out=$dir/bin.partial
	t0=$(now)
	log "etcd v$ETCD_VERSION: building"
	# The etcd server's main package is the root of the go.etcd.io/etcd/server/v3 module
	# (server/main.go calls etcdmain.Main); etcdctl is not needed.
	write_go_mod "$src" "require go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
	write_tools_go "$src" go.etcd.io/etcd/server/v3
	go_mod_tidy "$src"
	rm -rf "$out"
	mkdir -p "$out"
	(cd "$src" && go_build_timed etcd "$out" go.etcd.io/etcd/server/v3 "-s -w")
	[[ "$("$out/etcd" --version)" == *"etcd Version: $ETCD_VERSION"* ]] || die "$out/etcd is not $ETCD_VERSION"
	rm -rf "${dir:?}/bin"
	mv "$out" "$dir/bin"
	echo "$stamp" >"$dir/.complete"
	log "etcd v$ETCD_VERSION: done in $(since "$t0")s"
}

build_crictl() {
	local dir=$CRICTL_DIR stamp="crictl $CRICTL_VERSION"
	stamp_ok "$dir" "$stamp" && return 0
	go_env
	local t0 src=$dir/src out=$dir/bin.partial
	t0=$(now)
	log "crictl v$CRICTL_VERSION: building"
	write_go_mod "$src" "require sigs.k8s.io/cri-tools v$CRICTL_VERSION"
	write_tools_go "$src" sigs.k8s.io/cri-tools/cmd/crictl
	go_mod_tidy "$src"
	rm -rf "$out"
	mkdir -p "$out"
	(cd "$src" && go_build_timed crictl "$out" sigs.k8s.io/cri-tools/cmd/crictl \
		"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION")
	[[ "$("$out/crictl" --version)" == *"v$CRICTL_VERSION"* ]] || die "$out/crictl is not v$CRICTL_VERSION"
	rm -rf "${dir:?}/bin"
	mv "$out" "$dir/bin"
	echo "$stamp" >"$dir/.complete"
	log "crictl v$CRICTL_VERSION: done in $(since "$t0")s"
}

# The pause image: our own static pause binary in a one-layer OCI image, named after the source's
# hash (so an edit of pause.c or of this recipe makes a new image). Built as an OCI archive by
# hand, so `up` needs neither Docker nor a registry.
PAUSE_RECIPE=1
pause_tag() { { cat "$PAUSE_SRC"; echo "recipe $PAUSE_RECIPE"; } | sha256sum | cut -c1-12; }
pause_image() { echo "localhost/distrodebug/pause:$(pause_tag)"; }
pause_dir() { echo "$CACHE/pause-$(pause_tag)"; }

build_pause() {
	local dir tag image stamp
	[ -f "$PAUSE_SRC" ] || die "missing $PAUSE_SRC"
	dir=$(pause_dir)
	tag=$(pause_tag)
	image=$(pause_image)
	stamp="pause $image"
	stamp_ok "$dir" "$stamp" && [ -f "$dir/pause-oci.tar" ] && return 0
	local t0 w arch
	t0=$(now)
	arch=$(dpkg --print-architecture)  # amd64, arm64: the same names as OCI's
	w=$(mktemp -d)
	mkdir -p "$w/root" "$w/oci/blobs/sha256"
	gcc -static -O2 -s -Wall -Wextra -Werror -o "$w/root/pause" "$PAUSE_SRC"
	# A reproducible layer: fixed owner, mode and mtime.
	chmod 0755 "$w/root/pause"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu \
		-C "$w/root" -cf "$w/layer.tar" pause
	local layer layer_size config config_size manifest manifest_size
	layer=$(sha256sum <"$w/layer.tar" | cut -d' ' -f1)
	layer_size=$(stat -c %s "$w/layer.tar")
	mv "$w/layer.tar" "$w/oci/blobs/sha256/$layer"
	# Runs as 65535 like the upstream pause image; it needs no privilege.
	printf '%s' '{"architecture":"'"$arch"'","os":"linux","config":{"User":"65535:65535","Entrypoint":["/pause"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer"'"]},"history":[{"created_by":"scripts/cluster.sh: gcc -static tests/fixtures/cluster/pause.c"}]}' \
		>"$w/config.json"
	config=$(sha256sum <"$w/config.json" | cut -d' ' -f1)
	config_size=$(stat -c %s "$w/config.json")
	mv "$w/config.json" "$w/oci/blobs/sha256/$config"
	printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer"'","size":'"$layer_size"'}]}' \
		>"$w/manifest.json"
	manifest=$(sha256sum <"$w/manifest.json" | cut -d' ' -f1)
	manifest_size=$(stat -c %s "$w/manifest.json")
	mv "$w/manifest.json" "$w/oci/blobs/sha256/$manifest"
	printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
	printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest"'","size":'"$manifest_size"',"platform":{"architecture":"'"$arch"'","os":"linux"},"annotations":{"io.containerd.image.name":"'"$image"'","org.opencontainers.image.ref.name":"'"$tag"'"}}]}' \
		>"$w/oci/index.json"
	mkdir -p "$dir"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w/oci" -cf "$dir/pause-oci.tar.partial" .
	mv "$dir/pause-oci.tar.partial" "$dir/pause-oci.tar"
	rm -rf "$w"
	echo "$stamp" >"$dir/.complete"
	log "built pause image $image in $(since "$t0")s"
}

cmd_build() {
	local quiet=${1:-}
	ensure_host_packages
	mkdir -p "$CACHE"
	# One build at a time: a second `build` (or `up`) waits for the first and then finds the cache.
	exec 9>"$CACHE/.build.lock"
	if ! flock -n 9; then
		log "another build is running; waiting for it"
		flock 9
	fi
	local t0
	t0=$(now)
	build_pause
	build_etcd
	build_crictl
	build_k8s
	flock -u 9
	exec 9>&-
	if [ -z "$quiet" ]; then
		log "all components present (checked in $(since "$t0")s)"
		log "cache: $(du -sh "$CACHE" | cut -f1) in $CACHE"
	fi
}

# ================================================================ configuration
# Everything is generated by `up`; the PKI and kubeconfig only when missing, so they stay valid
# across down/up.

# pki_cert NAME SUBJECT EXTKEYUSAGE [SANS]: an EC P-256 key and a certificate signed by our CA.
pki_cert() {
	local name=$1 subj=$2 eku=$3 sans=${4:-} dir=$5
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
	openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[ -n "$sans" ] && echo "subjectAltName=$sans"
	} >"$dir/$name.ext"
	openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 3650 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
	rm -f "$dir/$name.csr" "$dir/$name.ext"
}

PKI_LAYOUT=1
ensure_pki() {
	[ -f "$PKI/.complete" ] && [ "$(cat "$PKI/.complete")" = "$PKI_LAYOUT" ] && return 0
	local w
	w=$(mktemp -d "$DATA/pki.XXXXXX")
	chmod 700 "$w"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$w/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$w/ca.key" -subj "/CN=distrodebug-cluster-ca" -days 3650 \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$w/ca.crt"
	pki_cert apiserver "/CN=kube-apiserver" serverAuth \
		"IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" "$w"
	# apiserver -> kubelet (exec, attach, logs, port-forward): system:masters, so kubelet's webhook
	# authorization lets it through without an extra binding.
	pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth "" "$w"
	# The kubelet's identity for the Node authorizer and NodeRestriction.
	pki_cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth "" "$w"
	pki_cert kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth \
		"IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME,DNS:localhost" "$w"
	pki_cert controller-manager "/CN=system:kube-controller-manager" clientAuth "" "$w"
	pki_cert scheduler "/CN=system:kube-scheduler" clientAuth "" "$w"
	pki_cert admin "/O=system:masters/CN=dd-admin" clientAuth "" "$w"
	# The restricted user: no group of its own (only system:authenticated), no binding, so RBAC
	# refuses it nearly everything.
	pki_cert restricted "/CN=dd-restricted" clientAuth "" "$w"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$w/sa.key" 2>/dev/null
	openssl pkey -in "$w/sa.key" -pubout -out "$w/sa.pub"
	echo "$PKI_LAYOUT" >"$w/.complete"
	rm -rf "$PKI" "$KUBECONFIG_FILE"
	mv "$w" "$PKI"
}

b64() { base64 -w0 <"$1"; }

# kubeconfig_for FILE USER CERTNAME: a one-context kubeconfig for a component, by file path.
kubeconfig_for() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: distrodebug
  cluster:
    server: $APISERVER_URL
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$3.crt
    client-key: $PKI/$3.key
contexts:
- name: default
  context:
    cluster: distrodebug
    user: $2
current-context: default
EOF
	chmod 600 "$1"
}

ensure_kubeconfigs() {
	kubeconfig_for "$PKI/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
	kubeconfig_for "$PKI/scheduler.kubeconfig" system:kube-scheduler scheduler
	kubeconfig_for "$PKI/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client
	[ -f "$KUBECONFIG_FILE" ] && return 0
	# The one for people and tests: data embedded, so it can be copied anywhere.
	local tmp=$KUBECONFIG_FILE.partial
	cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: distrodebug
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: dd-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
- name: dd-restricted
  user:
    client-certificate-data: $(b64 "$PKI/restricted.crt")
    client-key-data: $(b64 "$PKI/restricted.key")
contexts:
- name: distrodebug
  context:
    cluster: distrodebug
    user: dd-admin
    namespace: default
- name: distrodebug-restricted
  context:
    cluster: distrodebug
    user: dd-restricted
    namespace: default
current-context: distrodebug
EOF
	chmod 600 "$tmp"
	mv "$tmp" "$KUBECONFIG_FILE"
}

write_containerd_config() {
	# Debian's containerd (1.6.20 on bookworm) rather than a containerd 2.x built from source:
	# it is the distro package Docker already runs on here, it speaks CRI v1, which kubelet 1.34
	# needs (kubelet logs that RuntimeConfig is unimplemented and uses cgroupDriver from its
	# config), and it costs no build time. Upstream Kubernetes plans to drop containerd 1.x in a
	# later release: moving to 2.x then means a build step and a version 3 config.
	# It is a separate instance from Docker's: own root, state, socket and config.
	cat >"$CTRD_CONFIG" <<EOF
version = 2
root = "$CTRD_ROOT"
state = "$CTRD_STATE"
# "opt" would install into /opt/containerd; the others are snapshotters this host cannot use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$CTRD_SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(pause_image)"
  # root here lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj below containerd's own
  # (the sandbox asks for -998): clamp instead of failing every pod.
  restrict_oom_score_adj = true
  # pod network namespaces under our state dir, not /var/run/netns: down finds all of them.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        # runc's state under our run dir (the default, /run/containerd/runc, is shared with Docker's)
        Root = "$RUN/runc"
        # cgroupfs: this host is cgroup v1 (hybrid) without systemd as init.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
}

write_cni_config() {
	mkdir -p "$CNI_CONF_DIR" "$CNI_IPAM_DIR"
	# No default route and no masquerade: a pod reaches its own bridge (the node, 10.244.0.1) and
	# the other pods, nothing else. containerd's CRI adds the loopback plugin (lo) by itself.
	cat >"$CNI_CONF_DIR/10-distrodebug.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "distrodebug",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_IPAM_DIR",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
	mkdir -p "$STATIC_PODS" "$KUBELET_ROOT" "$POD_LOGS" "$DATA/kubelet-plugins"
	# Pods get no DNS server of the host's (it is not on loopback): lookups fail fast inside the pod.
	printf '%s\n' "# distrodebug test cluster: no DNS for pods" "nameserver 127.0.0.1" >"$RUN/pod-resolv.conf"
	cat >"$RUN/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
# this host: cgroup v1 (kubelet 1.34 warns and runs), no swap accounting wanted
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
# tests drop static (mirror) pods here; look often so they appear quickly
staticPodPath: $STATIC_PODS
fileCheckFrequency: 1s
podLogsDir: $POD_LOGS
volumePluginDir: $DATA/kubelet-plugins
resolvConf: $RUN/pod-resolv.conf
# no kube-proxy: kubelet need not touch iptables at all
makeIPTablesUtilChains: false
# the disk is shared with everything else: evict only when really full, never GC images (the
# pause image and loaded images cannot be pulled again: there is no registry)
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
}

# ================================================================ processes
pidfile() { echo "$RUN/$1.pid"; }

# The pid of a running component, checked against its binary name (pids get reused).
component_pid() {
	local f pid exe
	f=$(pidfile "$1")
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
	IFS= read -r -d '' exe <"/proc/$pid/cmdline" 2>/dev/null || [ -n "$exe" ] || return 1
	[ "$(basename "$exe")" = "$1" ] || return 1
	echo "$pid"
}

alive() { component_pid "$1" >/dev/null; }

# start NAME [ENV=...] -- BINARY ARGS...: in its own session (so the caller's Ctrl-C or process
# group kill does not take it down), stdout+stderr to its log.
start() {
	local name=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	local logf=$LOGS/$name.log
	# (fds 8 and 9 are our locks: a daemon must not hold them)
	echo "=== $(date -Is) $*" >>"$logf"
	env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy -u NO_PROXY -u no_proxy \
		"${envs[@]}" setsid "$@" </dev/null >>"$logf" 2>&1 8>&- 9>&- &
	echo $! >"$(pidfile "$name")"
}

fail() {
	local name=$1
	shift
	log "$name: $*"
	if [ -f "$LOGS/$name.log" ]; then
		echo "----- last lines of $LOGS/$name.log -----" >&2
		tail -n 40 "$LOGS/$name.log" >&2
		echo "-----" >&2
	fi
	log "logs of every component: $LOGS (stop what did start with: $0 down)"
	exit 1
}

# wait_for NAME SECONDS WHAT CMD...: poll CMD until it succeeds; fail with NAME's log if NAME
# dies or the time runs out.
wait_for() {
	local name=$1 secs=$2 what=$3
	shift 3
	local deadline=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		alive "$name" || fail "$name" "exited while waiting for: $what"
		[ "$(date +%s)" -lt "$deadline" ] || fail "$name" "timed out after ${secs}s waiting for: $what"
		sleep 0.2
	done
}

# stop SECS NAME...: SIGTERM to each, then SIGKILL to whatever still runs after SECS seconds.
stop() {
	local secs=$1 name pid i left
	shift
	for name in "$@"; do
		if pid=$(component_pid "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
	for ((i = 0; i < secs * 5; i++)); do
		left=0
		for name in "$@"; do
			if alive "$name"; then left=1; fi
		done
		[ $left -eq 0 ] && break
		sleep 0.2
	done
	for name in "$@"; do
		if pid=$(component_pid "$name"); then
			log "$name did not exit within ${secs}s of SIGTERM: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$(pidfile "$name")"
	done
}

kubectl_admin() { "$K8S_DIR/bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" --context distrodebug "$@"; }
ctr_() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
CRICTL_CONFIG=$DATA/crictl.yaml
# Endpoints always explicit: never let crictl fall back to a default socket of another runtime.
crictl_() {
	"$CRICTL_DIR/bin/crictl" --config "$CRICTL_CONFIG" --runtime-endpoint "unix://$CTRD_SOCK" \
		--image-endpoint "unix://$CTRD_SOCK" "$@"
}

# crictl warns on every call without a config file; this one is also what `env` points it at.
write_crictl_config() {
	printf '%s\n' "runtime-endpoint: unix://$CTRD_SOCK" "image-endpoint: unix://$CTRD_SOCK" "timeout: 30" \
		>"$CRICTL_CONFIG"
}

# ================================================================ components
start_containerd() {
	write_cni_config
	write_containerd_config
	mkdir -p "$CTRD_ROOT" "$CTRD_STATE"
	start containerd HTTP_PROXY=$DEAD_PROXY HTTPS_PROXY=$DEAD_PROXY NO_PROXY= -- \
		"$(command -v containerd)" --config "$CTRD_CONFIG"
}

wait_containerd() {
	wait_for containerd 30 "containerd to answer on $CTRD_SOCK" ctr --address "$CTRD_SOCK" version
	# our pause image, once per containerd image store
	if [ -z "$(ctr_ images ls -q "name==$(pause_image)")" ]; then
		ctr_ images import "$(pause_dir)/pause-oci.tar" >/dev/null ||
			fail containerd "could not import the pause image $(pause_image)"
	fi
	# Pods left over from a run that ended without `down` (containerd restores them from its
	# store): remove them before kubelet starts, so the new cluster starts empty.
	if [ -n "$(crictl_ pods -q 2>/dev/null)" ]; then
		log "removing pods left over from an earlier run"
		crictl_ rmp -af >/dev/null 2>&1 || true
	fi
}

start_etcd() {
	mkdir -p "$DATA/etcd"
	chmod 700 "$DATA/etcd"
	# --unsafe-no-fsync: a throw-away test cluster; fsync on this VM's disk is most of etcd's latency.
	start etcd -- "$ETCD_DIR/bin/etcd" \
		--name dd-etcd --data-dir "$DATA/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "dd-etcd=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
		--unsafe-no-fsync --log-level warn
}

start_apiserver() {
	start kube-apiserver -- "$K8S_DIR/bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
		--advertise-address "$NODE_IP" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--allow-privileged=true \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" \
		--kubelet-preferred-address-types InternalIP \
		--profiling=false
}

apiserver_ready() {
	curl -sf --noproxy '*' --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"$APISERVER_URL/readyz" >/dev/null
}

start_controller_manager() {
	local kc=$PKI/controller-manager.kubeconfig
	start kube-controller-manager -- "$K8S_DIR/bin/kube-controller-manager" \
		--kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
		--bind-address 127.0.0.1 --secure-port "$CM_PORT" \
		--leader-elect=false \
		--use-service-account-credentials \
		--service-account-private-key-file "$PKI/sa.key" \
		--root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--profiling=false
}

start_scheduler() {
	local kc=$PKI/scheduler.kubeconfig
	start kube-scheduler -- "$K8S_DIR/bin/kube-scheduler" \
		--kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
		--bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
		--leader-elect=false --profiling=false
}

start_kubelet() {
	write_kubelet_config
	start kubelet -- "$K8S_DIR/bin/kubelet" \
		--config "$RUN/kubelet-config.yaml" \
		--kubeconfig "$PKI/kubelet.kubeconfig" \
		--hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
		--root-dir "$KUBELET_ROOT" \
		--v 1
}

node_ready() {
	local out
	out=$(kubectl_admin get node "$NODE_NAME" \
		-o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints}' 2>/dev/null) || return 1
	# Ready, and the not-ready taint already lifted (else new pods wait for it)
	[ "$out" = "True " ]
}

# Pods can be created in "default" once its service account and root CA configmap exist.
default_namespace_ready() {
	kubectl_admin -n default get serviceaccount default >/dev/null 2>&1 &&
		kubectl_admin -n default get configmap kube-root-ca.crt >/dev/null 2>&1
}

# ================================================================ host network and sysctls
setup_network() {
	# Created before kubelet: its address is the node IP (kubelet checks the node IP is local).
	# The bridge plugin adopts an existing bridge.
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
	fi
	ip addr replace "$NODE_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Docker sets the FORWARD policy to DROP and br_netfilter sends bridged frames through it:
	# let pods on our bridge talk to each other (as Docker does for docker0).
	iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$FWD_COMMENT" -j ACCEPT 2>/dev/null ||
		iptables -w -I FORWARD 1 -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$FWD_COMMENT" -j ACCEPT
}

# Host directories that kubelet or CNI create outside our own ones: remember which did not exist
# before, so `down` can remove them again (deepest first).
record_created_dirs() {
	[ -f "$RUN/created-dirs" ] && return 0
	local d
	for d in /var/log/containers /var/lib/cni/results /var/lib/cni; do
		[ -e "$d" ] || echo "$d"
	done >"$RUN/created-dirs"
}

record_sysctls() {
	[ -f "$RUN/sysctls.orig" ] && return 0
	local s
	for s in "${SYSCTLS[@]}"; do
		echo "$s $(cat "/proc/sys/$s")"
	done >"$RUN/sysctls.orig"
}

restore_sysctls() {
	[ -f "$RUN/sysctls.orig" ] || return 0
	local s v
	while read -r s v; do
		[ "$(cat "/proc/sys/$s")" = "$v" ] || echo "$v" >"/proc/sys/$s" 2>/dev/null ||
			log "could not restore /proc/sys/$s to $v"
	done <"$RUN/sysctls.orig"
}

# ================================================================ up
# Before starting anything: our ports free, our pod subnet unused by any other interface.
preflight() {
	local p busy
	for p in $ETCD_PORT $ETCD_PEER_PORT $APISERVER_PORT $CM_PORT $SCHED_PORT $KUBELET_PORT $KUBELET_HEALTHZ_PORT; do
		busy=$(ss -Hltnp "sport = :$p" 2>/dev/null || true)
		[ -z "$busy" ] || die "port $p is already in use: $busy"
	done
	busy=$(ip -o -4 addr show to "$POD_SUBNET" 2>/dev/null | awk -v b="$BRIDGE" '$2 != b' || true)
	[ -z "$busy" ] || die "the pod subnet $POD_SUBNET is already used here: $busy"
}

cluster_all_alive() {
	local c
	for c in "${COMPONENTS[@]}"; do
		alive "$c" || return 1
	done
}

cluster_any_alive() {
	local c
	for c in "${COMPONENTS[@]}"; do
		alive "$c" && return 0
	done
	return 1
}

cmd_up() {
	require_root up
	local t0
	t0=$(now)
	if cluster_all_alive && node_ready; then
		log "already up; node $NODE_NAME is Ready"
		return 0
	fi
	if cluster_any_alive || [ -d "$RUN" ]; then
		log "a previous cluster is partly there: taking it down first"
		cmd_down
	fi
	cmd_build quiet
	local tb
	tb=$(since "$t0")
	preflight
	mkdir -p "$DATA" "$RUN" "$LOGS"
	chmod 700 "$DATA"
	if compgen -G "$LOGS/*.log" >/dev/null; then
		rm -rf "$LOGS/previous"
		mkdir -p "$LOGS/previous"
		mv "$LOGS"/*.log "$LOGS/previous/"
	fi
	ensure_pki
	ensure_kubeconfigs
	write_crictl_config
	record_created_dirs
	record_sysctls
	setup_network

	start_containerd
	start_etcd
	wait_for etcd 30 "etcd health on 127.0.0.1:$ETCD_PORT" curl -sf --noproxy '*' --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
	start_apiserver
	wait_containerd
	wait_for kube-apiserver 90 "$APISERVER_URL/readyz" apiserver_ready
	start_controller_manager
	start_scheduler
	start_kubelet
	wait_for kubelet 120 "node $NODE_NAME Ready and untainted" node_ready
	wait_for kube-controller-manager 60 "service account default/default and configmap kube-root-ca.crt" \
		default_namespace_ready
	cluster_all_alive || fail kubelet "a component exited during start-up: $(cmd_status_line)"
	log "up in $(since "$t0")s (build check ${tb}s); node $NODE_NAME Ready"
	log "kubeconfig: $KUBECONFIG_FILE (contexts distrodebug, distrodebug-restricted); logs: $LOGS"
	log "use it with: eval \"\$($0 env)\""
}

# ================================================================ down
# Kill a process and all its descendants (used only on processes proven to be ours).
kill_tree() {
	local pid=$1 child
	# shellcheck disable=SC2013  # the file is one line of space-separated pids
	for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
		kill_tree "$child"
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# containerd shims of our instance: their command line names our socket.
our_shims() {
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		[[ "$cmd" == *containerd-shim*" -address $CTRD_SOCK "* ]] && echo "${p#/proc/}"
	done
	return 0
}

sweep_processes() {
	local pid cg f
	for pid in $(our_shims); do
		log "killing leftover shim $pid and its containers"
		kill_tree "$pid"
	done
	# A shim killed that way leaves its socket in /run/containerd/s (containerd 1.6 puts every
	# shim socket there, Docker's too); its name is sha256(<containerd socket>/<namespace>/<id>).
	local task h
	for task in "$CTRD_STATE"/io.containerd.runtime.v2.task/k8s.io/*; do
		[ -d "$task" ] || continue
		h=$(printf '%s' "$CTRD_SOCK/k8s.io/${task##*/}" | sha256sum | cut -d' ' -f1)
		rm -f "/run/containerd/s/$h"
	done
	# kubelet (cgroupfs driver) puts every pod under /kubepods in each v1 hierarchy: anything still
	# there is a container process of ours. Then remove the empty cgroups, deepest first.
	for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$cg" ] || continue
		find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
			kill -KILL "$pid" 2>/dev/null || true
		done || true
	done
	sleep 0.2
	for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$cg" ] || continue
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

# Unmount everything under our directories (pod volumes, container rootfs, sandbox /dev/shm,
# pod network namespaces), deepest first.
sweep_mounts() {
	local m i
	for i in 1 2 3; do
		mapfile -t mounts < <(findmnt -rn -o TARGET | grep -E "^($RUN|$DATA)(/|\$)" | sort -r)
		[ ${#mounts[@]} -eq 0 ] && return 0
		for m in "${mounts[@]}"; do
			m=$(printf '%b' "$m")  # findmnt -r escapes spaces and the like as \x20
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
	findmnt -rn -o TARGET | grep -E "^($RUN|$DATA)(/|\$)" >&2 && log "mounts above could not be removed"
	return 0
}

# iptables rules that mention our bridge, subnet or the CNI portmap chains, and the chains.
sweep_iptables() {
	local ipt table rule chain rules
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for table in filter nat mangle; do
			mapfile -t rules < <("$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A ' |
				grep -E -- "$BRIDGE|${POD_SUBNET%/*}|$FWD_COMMENT|CNI-HOSTPORT|CNI-DN-")
			for rule in "${rules[@]}"; do
				# the saved rule is shell-quoted (comments); eval turns it back into arguments
				eval "$ipt -w -t $table -D ${rule#-A }" 2>/dev/null || true
			done
			for chain in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(CNI-HOSTPORT[^ ]*\|CNI-DN-[^ ]*\) .*/\1/p'); do
				"$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
				"$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

sweep_network() {
	local l
	for l in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1); do
		ip link del "$l" 2>/dev/null || true
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	sweep_iptables
}

cmd_down() {
	require_root down
	local purge=${1:-} t0
	t0=$(now)
	# kubelet first, so it does not restart what we stop next.
	stop 20 kubelet
	rm -rf "$STATIC_PODS"
	# Stop and remove every pod through the CRI while containerd still runs: that runs CNI DEL
	# (veth, IPAM) and unmounts the pod network namespaces and /dev/shm.
	if alive containerd && [ -x "$CRICTL_DIR/bin/crictl" ]; then
		crictl_ rmp -af >/dev/null 2>&1 || log "crictl rmp failed; sweeping by hand"
		local c
		for c in $(ctr_ containers ls -q 2>/dev/null); do
			ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
			ctr_ tasks rm -f "$c" >/dev/null 2>&1 || true
			ctr_ containers rm "$c" >/dev/null 2>&1 || true
		done
	fi
	# The control plane's state is thrown away: no need for the apiserver's graceful drain (it
	# can wait on requests that were proxied to the kubelet we just stopped).
	stop 5 kube-scheduler kube-controller-manager kube-apiserver
	stop 10 etcd
	stop 20 containerd
	# Whatever a crash or a failed step left behind.
	sweep_processes
	sweep_mounts
	sweep_network
	restore_sysctls
	# kubelet's /var/log/containers symlinks point into our pod log directory.
	find /var/log/containers -maxdepth 1 -type l -lname "$POD_LOGS/*" -delete 2>/dev/null || true
	# libcni caches each ADD result under /var/lib/cni/results (containerd 1.6 offers no setting);
	# a DEL removes them, a crash does not.
	rm -f /var/lib/cni/results/distrodebug-* 2>/dev/null || true
	local sb
	for sb in "$CTRD_STATE"/io.containerd.grpc.v1.cri/sandboxes/*; do
		[ -d "$sb" ] && rm -f /var/lib/cni/results/cni-loopback-"${sb##*/}"-lo
	done
	# Directories that only our run created (noted by `up`), if they are empty again.
	if [ -f "$RUN/created-dirs" ]; then
		while read -r d; do
			rmdir "$d" 2>/dev/null || true
		done <"$RUN/created-dirs"
	fi
	rm -rf "$RUN" "$DATA/etcd" "$KUBELET_ROOT" "$POD_LOGS" "$DATA/kubelet-plugins"
	if [ "$purge" = --purge ]; then
		rm -rf "$DATA"
		log "down (purged $DATA) in $(since "$t0")s"
	else
		log "down in $(since "$t0")s (kept: $PKI, $KUBECONFIG_FILE, images in $CTRD_ROOT, logs in $LOGS)"
	fi
}

# ================================================================ load
# Docker's short names, normalised as Docker and containerd's CRI do:
# busybox -> docker.io/library/busybox:latest, distrodebug/busybox:1 -> docker.io/distrodebug/busybox:1
normalise_ref() {
	local ref=$1 first rest
	case "$ref" in *@*) ;; *) [[ "${ref##*/}" == *:* ]] || ref=$ref:latest ;; esac
	first=${ref%%/*}
	if [[ "$ref" != */* ]]; then
		ref=docker.io/library/$ref
	elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
		ref=docker.io/$ref
	elif [[ "$first" == docker.io && "$ref" != */*/* ]]; then
		rest=${ref#docker.io/}
		ref=docker.io/library/$rest
	fi
	echo "$ref"
}

cmd_load() {
	require_root load
	[ $# -gt 0 ] || die "usage: $0 load IMAGE..."
	alive containerd || die "the cluster is not up (run: $0 up)"
	command -v docker >/dev/null || die "docker is needed for load"
	local img id name have todo=() t0
	t0=$(now)
	for img in "$@"; do
		id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null) || die "no such Docker image: $img"
		name=$(normalise_ref "$img")
		# CRI's image id is the config digest, which is Docker's image ID.
		have=$(crictl_ inspecti -o go-template --template '{{.status.id}}' "$name" 2>/dev/null || true)
		if [ "$have" = "$id" ]; then
			log "$name: already loaded"
		else
			todo+=("$img")
		fi
	done
	[ ${#todo[@]} -eq 0 ] && return 0
	docker save "${todo[@]}" | ctr_ images import - >/dev/null || die "import of ${todo[*]} failed"
	for img in "${todo[@]}"; do
		name=$(normalise_ref "$img")
		have=$(crictl_ inspecti -o go-template --template '{{.status.id}}' "$name" 2>/dev/null || true)
		[ "$have" = "$(docker image inspect -f '{{.Id}}' "$img")" ] || die "$img did not arrive as $name"
		log "$name: loaded"
	done
	log "loaded ${#todo[@]} image(s) in $(since "$t0")s"
}

# ================================================================ env, status
cmd_env() {
	echo "export KUBECONFIG=$KUBECONFIG_FILE"
	echo "export PATH=$K8S_DIR/bin:$CRICTL_DIR/bin:\$PATH"
	echo "export CRI_CONFIG_FILE=$CRICTL_CONFIG"
}

cmd_status_line() {
	local c out=""
	for c in "${COMPONENTS[@]}"; do
		if alive "$c"; then out+="$c=up "; else out+="$c=down "; fi
	done
	echo "$out"
}

cmd_status() {
	local c pid rc=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(component_pid "$c"); then
			printf '%-24s running (pid %s)\n' "$c" "$pid"
		else
			printf '%-24s stopped\n' "$c"
			rc=1
		fi
	done
	if [ $rc -eq 0 ] && node_ready; then
		echo "node $NODE_NAME: Ready"
	else
		echo "node $NODE_NAME: not Ready"
		rc=1
	fi
	echo "kubeconfig: $KUBECONFIG_FILE (contexts distrodebug, distrodebug-restricted)"
	echo "apiserver: $APISERVER_URL  etcd: http://127.0.0.1:$ETCD_PORT  containerd: $CTRD_SOCK"
	echo "static pods: $STATIC_PODS  logs: $LOGS"
	return $rc
}

usage() {
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}

# up, down and load change the running cluster: one at a time (pytest workers may race).
lock_cluster() {
	mkdir -p "$DATA"
	exec 8>"$DATA/.lock"
	if ! flock -n 8; then
		log "waiting for another '$0 up/down/load' to finish"
		flock 8
	fi
}

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	case "$cmd" in
	up | down | load) require_root "$cmd" && lock_cluster ;;
	esac
	case "$cmd" in
	build) cmd_build ;;
	up) cmd_up ;;
	down) cmd_down "$@" ;;
	load) cmd_load "$@" ;;
	env) cmd_env ;;
	status) cmd_status ;;
	-h | --help | help) usage 0 ;;
	*) usage ;;
	esac
}

main "$@"
