#!/bin/bash
# run.sh: critest (sigs.k8s.io/cri-tools v1.37.0) against a CRI endpoint,
# offline, with its test images served by a loopback registry. See
# README.md beside this file.
#
#   run.sh registry                 start the loopback registry, push the stand-in images
#   run.sh containerd               start a private containerd 1.6 (+runc); prints its endpoint
#   run.sh berthd                   start bin/berthd with a private root; prints its endpoint
#   run.sh critest ENDPOINT [ARGS]  run critest (ARGS go to critest, e.g. -ginkgo.focus=...)
#   run.sh all containerd|berthd    registry + daemon + critest + stop
#   run.sh stop                     stop everything run.sh started (by pid file)
#
# Everything lives under $CRITEST_WORK (default /tmp/berth-critest): the
# registry's storage, containerd's root/state/socket, berthd's root,
# private CNI configs, logs and pid files. Nothing of the host's
# /run/containerd or /var/lib/berth is used.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${CRITEST_WORK:-/tmp/berth-critest}
CACHE=${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
CRI_TOOLS=v1.37.0
CRITEST=${CRITEST:-$CACHE/critest/critest-$CRI_TOOLS}
# The pod network of the private runtimes: a bridge and a /16 of their own
# per work directory (two runs side by side must not share a bridge with
# two addresses), in 10.200-10.249: far from berth's 10.87/10.90 and CNI's
# usual 10.88.
HASH=$(printf %s "$WORK" | md5sum | cut -c1-6)
SUBNET=${CRITEST_SUBNET:-10.$((200 + 0x$HASH % 50)).0.0/16}
BRIDGE=${CRITEST_BRIDGE:-crit$HASH}
PORT=${CRITEST_REGISTRY_PORT:-$((5200 + 0x$HASH % 500))}
REG=127.0.0.1:$PORT
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

die() { echo "run.sh: $*" >&2; exit 1; }

need() {
	command -v "$1" >/dev/null || die "$1 is missing: apt-get install $2"
}

# build_critest builds critest in a scratch module (cri-tools' own go.mod
# is not ours to merge) into $CACHE.
build_critest() {
	[ -x "$CRITEST" ] && return 0
	local mod
	mod=$(mktemp -d)
	echo "building critest $CRI_TOOLS into $CRITEST (a few minutes)" >&2
	(
		cd "$mod"
		go mod init critest-build >/dev/null 2>&1
		timeout 900 go get -t sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS
		mkdir -p "$(dirname "$CRITEST")"
		timeout 900 go test -c -o "$CRITEST.tmp" sigs.k8s.io/cri-tools/cmd/critest
		mv "$CRITEST.tmp" "$CRITEST"
	) || { rm -rf "$mod"; die "building critest failed"; }
	rm -rf "$mod"
}

# wait_for CMD...: retries CMD for up to 30 s.
wait_for() {
	local i
	for i in $(seq 60); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

registry() {
	need docker-registry docker-registry
	mkdir -p "$WORK/registry"
	if ! alive "$WORK/registry.pid"; then
		cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: $REG
EOF
		docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry.log" 2>&1 &
		echo $! >"$WORK/registry.pid"
		wait_for busybox wget -q -O /dev/null "http://$REG/v2/" || die "registry on $REG did not answer: $(tail -5 "$WORK/registry.log")"
		alive "$WORK/registry.pid" || die "registry on $REG did not start (port taken? CRITEST_REGISTRY_PORT): $(tail -5 "$WORK/registry.log")"
	fi
	mkdir -p "$CACHE/critest"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$CACHE/critest/standin" ./test/critest/standin)
	need busybox busybox-static
	local sh
	sh=$(sh_busybox) || exit 1
	"$CACHE/critest/standin" -registry "$REG" -busybox "$(command -v busybox)" -sh "$sh" >"$WORK/standin.log" ||
		die "pushing the stand-in images failed: $(tail -5 "$WORK/standin.log")"
	echo "registry $REG: $(wc -l <"$WORK/standin.log") stand-in references pushed" >&2
}

# sh_busybox prints the path of a busybox whose sh runs applets by their
# path, as busybox's image does (Debian's dynamic busybox; the static one
# runs its own applets and never looks at /bin/ls, which critest's
# MaskedPaths spec masks). It conflicts with busybox-static as a package,
# so it is fetched with apt and unpacked in the cache, not installed.
# Without it (no apt) the images' sh is the static busybox and that one
# spec fails; under CI=true that is an error.
sh_busybox() {
	local d=$CACHE/critest/busybox-deb
	if [ ! -x "$d/x/bin/busybox" ]; then
		rm -rf "$d" && mkdir -p "$d"
		if ! (cd "$d" && timeout 300 apt-get download busybox >"$d/apt.log" 2>&1 && dpkg-deb -x busybox_*.deb x); then
			[ "${CI:-}" != true ] || die "apt-get download busybox failed: $(tail -3 "$d/apt.log")"
			echo "warning: no dynamic busybox (apt-get download busybox failed): the images' sh is the static one" >&2
			return
		fi
	fi
	echo "$d/x/bin/busybox"
}

# cni_conf DIR: the pod network both runtimes get.
cni_conf() {
	local dev
	dev=$(ip -o route show "$SUBNET" | awk '{print $3}' | { grep -vx "$BRIDGE" || true; } | head -1)
	[ -z "$dev" ] || die "the pod subnet $SUBNET is already routed to $dev (another run?): set CRITEST_SUBNET"
	mkdir -p "$1"
	cat >"$1/10-critest.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "critest",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$WORK/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

containerd_start() {
	# CAP_SYS_RESOURCE is bit 24 of the bounding set.
	local RESTRICT_OOM=false
	(( (0x$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> 24) & 1 )) || RESTRICT_OOM=true
	need containerd containerd
	need runc runc
	local d=$WORK/containerd
	if alive "$WORK/containerd.pid"; then
		echo "unix://$d/containerd.sock"
		return
	fi
	mkdir -p "$d/certs.d"
	cni_conf "$d/net.d"
	# Mirrors: containerd 1.6's hosts.toml, one directory per registry.
	for host in registry.k8s.io k8s.gcr.io gcr.io; do
		mkdir -p "$d/certs.d/$host"
		cat >"$d/certs.d/$host/hosts.toml" <<EOF
server = "https://$host"
[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOF
	done
	cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Hosts that withhold CAP_SYS_RESOURCE (CI, this VM) refuse the pause
  # container's oom_score_adj -998: runc init dies with "can't get final
  # child's PID from pipe". containerd then clamps to its own score.
  restrict_oom_score_adj = $RESTRICT_OOM
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$d/certs.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
EOF
	containerd --config "$d/config.toml" >"$WORK/containerd.log" 2>&1 &
	echo $! >"$WORK/containerd.pid"
	wait_for test -S "$d/containerd.sock" || die "containerd did not start: $(tail -5 "$WORK/containerd.log")"
	echo "unix://$d/containerd.sock"
}

berthd_start() {
	local d=$WORK/berthd bin=${BERTHD:-$REPO/bin/berthd}
	[ -x "$bin" ] || die "$bin is missing: make build"
	if alive "$WORK/berthd.pid"; then
		echo "unix://$d/berthd.sock"
		return
	fi
	mkdir -p "$d/root"
	cni_conf "$d/net.d"
	cat >"$d/registries.json" <<EOF
{"registries": {
  "registry.k8s.io": {"mirrors": ["$REG"]},
  "k8s.gcr.io": {"mirrors": ["$REG"]},
  "gcr.io": {"mirrors": ["$REG"]}
}}
EOF
	# berthd finds berth-monitor and berth-runtime beside itself or on PATH.
	# critest checks the CRI's text, that a config naming no seccomp
	# profile runs unconfined; berthd's default, as CRI-O's, is the
	# runtime's profile (kubelet always names one).
	PATH=$(dirname "$bin"):$PATH "$bin" --root "$d/root" --runroot "$d/run" --socket "$d/berthd.sock" \
		--cni-conf-dir "$d/net.d" --registries-config "$d/registries.json" \
		--seccomp-use-default-when-empty=false ${BERTHD_FLAGS:-} \
		>"$WORK/berthd.log" 2>&1 &
	echo $! >"$WORK/berthd.pid"
	wait_for test -S "$d/berthd.sock" || die "berthd did not start: $(tail -5 "$WORK/berthd.log")"
	echo "unix://$d/berthd.sock"
}

critest_run() {
	local ep=$1
	shift
	build_critest
	local name
	name=$(basename "${ep#unix://}" .sock)
	mkdir -p "$WORK/reports"
	echo "critest $CRI_TOOLS against $ep; log in $WORK/critest-$name.log" >&2
	set +e
	(cd "$WORK" && timeout "${CRITEST_TIMEOUT:-3600}" "$CRITEST" \
		-runtime-endpoint "$ep" -image-endpoint "$ep" \
		-ginkgo.junit-report="$WORK/reports/junit-$name.xml" \
		-ginkgo.no-color -ginkgo.timeout=1h "$@") >"$WORK/critest-$name.log" 2>&1
	local rc=$?
	set -e
	summary "$WORK/critest-$name.log"
	echo "JUnit report (every spec's name and state): $WORK/reports/junit-$name.xml" >&2
	return $rc
}

# summary prints ginkgo's counts and the names of failed specs.
summary() {
	grep -E '^(Ran [0-9]+ of|(SUCCESS|FAIL)! .*Passed)' "$1" || tail -20 "$1"
	grep -E '^\s*\[FAIL\]' "$1" | sed 's/^\s*//' | sort -u || true
}

stop_all() {
	local p
	for p in berthd containerd registry; do
		if alive "$WORK/$p.pid"; then
			kill "$(cat "$WORK/$p.pid")"
			wait_for sh -c "! kill -0 $(cat "$WORK/$p.pid")" || kill -9 "$(cat "$WORK/$p.pid")"
		fi
		rm -f "$WORK/$p.pid"
	done
	# The pod bridge is ours (its name is run.sh's); CNI DEL leaves it.
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}

case "${1:-}" in
registry) registry ;;
containerd) containerd_start ;;
berthd) berthd_start ;;
critest)
	[ $# -ge 2 ] || die "usage: run.sh critest ENDPOINT [critest flags]"
	shift
	critest_run "$@"
	;;
all)
	[ $# -ge 2 ] || die "usage: run.sh all containerd|berthd [critest flags]"
	rt=$2
	shift 2
	registry
	case $rt in
	containerd) ep=$(containerd_start) ;;
	berthd) ep=$(berthd_start) ;;
	*) die "unknown runtime $rt" ;;
	esac
	rc=0
	critest_run "$ep" "$@" || rc=$?
	exit $rc
	;;
build) build_critest ;;
stop) stop_all ;;
*) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
