#!/bin/bash
# run.sh runs a real kubelet in standalone mode (no API server) against
# berthd, drops static pod manifests in its staticPodPath, checks what
# kubelet made of them through crictl, and removes everything it made.
#
# Usage (as root, from anywhere, after `make build`):
#   test/kubelet/run.sh            # the checks; exit 0 when all pass
#   KL_KEEP=1 test/kubelet/run.sh  # leave it all running to look around;
#                                  # `test/kubelet/run.sh cleanup DIR` ends it
#
# Environment: KUBELET (a kubelet binary; default: test/kubelet/build.sh's
# cached one, built on first use), KL_POD_SUBNET (default 10.213.0.0/24),
# KL_TIMEOUT (seconds each check may wait, default 120).
#
# What it touches on the host, and undoes: a private directory
# /tmp/berth-kl.XXXXXX (berthd's root, state and socket; kubelet's root-dir
# and pod logs), a shared bind mount of kubelet's root-dir, a cgroup
# berth-kl-XXXXXX in each cgroup hierarchy (kubelet's cgroupRoot), the
# berth-pods bridge network and the pods' veths and rules.  kubelet runs in
# a mount namespace of its own where three kernel sysctls it would rewrite
# (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1) are
# files holding those values, so the host's settings stay as they are.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=$REPO/bin
TIMEOUT=${KL_TIMEOUT:-120}

log() { printf '%s run.sh: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# cleanup DIR removes everything a run made with state in DIR. It is the
# EXIT trap, and can be called by hand after KL_KEEP=1.
cleanup() {
	local w=$1
	[ -f "$w/env" ] || return 0
	# shellcheck disable=SC1091
	. "$w/env"
	local crictl=(crictl --timeout 30s --runtime-endpoint "unix://$w/berth.sock")
	log "cleanup $w"
	# kubelet first stops the pods it runs when their manifests go.
	rm -f "$w"/manifests/*.yaml
	if [ -f "$w/kubelet.pid" ] && kill -0 "$(cat "$w/kubelet.pid")" 2>/dev/null; then
		for _ in $(seq 1 30); do
			[ -z "$("${crictl[@]}" pods -q 2>/dev/null)" ] && break
			sleep 2
		done
		kill "$(cat "$w/kubelet.pid")" 2>/dev/null || true
		for _ in $(seq 1 20); do kill -0 "$(cat "$w/kubelet.pid")" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$(cat "$w/kubelet.pid")" 2>/dev/null || true
	fi
	# What kubelet left, berthd removes.
	if [ -S "$w/berth.sock" ]; then
		"${crictl[@]}" rmp -fa >/dev/null 2>&1 || true
	fi
	if [ -f "$w/berthd.pid" ] && kill -0 "$(cat "$w/berthd.pid")" 2>/dev/null; then
		kill "$(cat "$w/berthd.pid")" 2>/dev/null || true
		for _ in $(seq 1 20); do kill -0 "$(cat "$w/berthd.pid")" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$(cat "$w/berthd.pid")" 2>/dev/null || true
	fi
	"$BIN/berth" --root "$w/root" --runroot "$w/run" --namespace k8s.io rm -f -a >/dev/null 2>&1 || true
	"$BIN/berth" --root "$w/root" --runroot "$w/run" --namespace k8s.io network rm berth-pods >/dev/null 2>&1 || true
	"$BIN/berth" --root "$w/root" --runroot "$w/run" network rm berth-pods >/dev/null 2>&1 || true
	# Mounts under the private directory (kubelet's root-dir bind, pods'
	# namespaces, overlays), deepest first.
	grep -F " $w" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	# The cgroup root, deepest first; only the one this run made.
	if [ -n "${KL_CGROUP:-}" ]; then
		for h in /sys/fs/cgroup/*/; do
			[ -d "$h$KL_CGROUP" ] || continue
			find "$h$KL_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null || true
			[ -d "$h$KL_CGROUP" ] && log "cleanup: cgroup $h$KL_CGROUP remains"
		done
	fi
	if grep -qF " $w" /proc/self/mountinfo; then
		log "cleanup: mounts remain under $w"
		return 1
	fi
	rm -rf "$w"
}

if [ "${1:-}" = cleanup ]; then
	cleanup "${2:?usage: run.sh cleanup DIR}"
	exit
fi

[ "$(id -u)" = 0 ] || die "needs root"
for b in berthd berth berth-monitor berth-runtime; do
	[ -x "$BIN/$b" ] || die "$BIN/$b missing: run make build first"
done
command -v crictl >/dev/null || die "needs crictl in PATH"
[ -x /bin/busybox ] || die "needs Debian's busybox-static at /bin/busybox"
KUBELET=${KUBELET:-$("$HERE/build.sh" | tail -n1)}
[ -x "$KUBELET" ] || die "no kubelet at $KUBELET"

W=$(mktemp -d /tmp/berth-kl.XXXXXX)
SUFFIX=${W##*.}
SUFFIX=$(echo "$SUFFIX" | tr 'A-Z' 'a-z')
KL_CGROUP=berth-kl-$SUFFIX
NODE=berth-kl-$SUFFIX
SUBNET=${KL_POD_SUBNET:-10.213.0.0/24}
echo "KL_CGROUP=$KL_CGROUP" >"$W/env"
if [ -z "${KL_KEEP:-}" ]; then
	trap 'cleanup "$W"' EXIT
fi
mkdir -p "$W/net.d" "$W/manifests" "$W/kubelet" "$W/pods" "$W/rootfs" "$W/sysctl"
CRICTL=(crictl --timeout 30s --runtime-endpoint "unix://$W/berth.sock")
log "state in $W, kubelet $KUBELET"

# wait_for DESC CMD...: runs CMD until it succeeds, at most TIMEOUT seconds.
wait_for() {
	local desc=$1
	shift
	local end=$((SECONDS + TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || die "timed out after ${TIMEOUT}s waiting for $desc"
		sleep 2
	done
	log "ok: $desc"
}

# The image: busybox-static and its applets, a page to serve.
IMG=localhost/berth-kl/busybox:latest
(
	cd "$W/rootfs"
	mkdir -p bin etc tmp www proc sys dev
	cp /bin/busybox bin/
	for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "bin/$a"; done
	echo 'hello from berth' >www/index.html
	echo 'root:x:0:0:root:/root:/bin/sh' >etc/passwd
	echo 'root:x:0:' >etc/group
	tar -cf ../rootfs.tar .
)
"$BIN/berth" --root "$W/root" --runroot "$W/run" import \
	--change 'CMD=sh' --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	"$W/rootfs.tar" "$IMG" >/dev/null

# berthd, in a session of its own so that a Ctrl-C of this script reaches
# it only through cleanup.
setsid "$BIN/berthd" --root "$W/root" --state "$W/run" --socket "$W/berth.sock" \
	--cni-conf-dir "$W/net.d" --pod-subnet "$SUBNET" --log-level debug \
	>"$W/berthd.log" 2>&1 </dev/null &
echo $! >"$W/berthd.pid"
wait_for "berthd serving on $W/berth.sock" "${CRICTL[@]}" version

# kubelet's cgroup root, in every hierarchy, as libcontainer's cgroupfs
# manager finds them (cpuset needs its cpus and mems before any child).
for h in /sys/fs/cgroup/*/; do
	case $h in */unified/ | */systemd/) continue ;; esac
	mkdir "$h$KL_CGROUP"
	if [ -f "$h/cpuset.cpus" ]; then
		cat "$h/cpuset.cpus" >"$h$KL_CGROUP/cpuset.cpus"
		cat "$h/cpuset.mems" >"$h$KL_CGROUP/cpuset.mems"
	fi
done
[ -d /sys/fs/cgroup/unified ] && mkdir /sys/fs/cgroup/unified/$KL_CGROUP
[ -d /sys/fs/cgroup/systemd ] && mkdir /sys/fs/cgroup/systemd/$KL_CGROUP

# kubelet's root-dir is a shared mount, so that mounts kubelet makes in its
# own mount namespace (volumes) reach berthd's.
mount --bind "$W/kubelet" "$W/kubelet"
mount --make-rshared "$W/kubelet"

# The sysctls kubelet insists on, as files in its mount namespace.
echo 1 >"$W/sysctl/vm.overcommit_memory"
echo 10 >"$W/sysctl/kernel.panic"
echo 1 >"$W/sysctl/kernel.panic_on_oops"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
HEALTHZ=$(free_port)
cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$W/berth.sock
imageServiceEndpoint: unix://$W/berth.sock
staticPodPath: $W/manifests
fileCheckFrequency: 5s
syncFrequency: 10s
podLogsDir: $W/pods
cgroupDriver: cgroupfs
cgroupRoot: /$KL_CGROUP
cgroupsPerQOS: ${KL_CGROUPS_PER_QOS:-true}
enforceNodeAllocatable: []
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
oomScoreAdj: 0
address: 127.0.0.1
port: $PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
podCIDR: $SUBNET
resolvConf: /etc/resolv.conf
EOF

setsid unshare -m --propagation unchanged sh -c '
	set -e
	mount --make-rprivate /proc
	for f in vm.overcommit_memory kernel.panic kernel.panic_on_oops; do
		mount --bind "$1/sysctl/$f" "/proc/sys/$(echo "$f" | tr . /)"
	done
	shift
	exec "$@"' sh "$W" "$KUBELET" --config "$W/kubelet.yaml" --root-dir "$W/kubelet" \
	--hostname-override "$NODE" --v 2 \
	>"$W/kubelet.log" 2>&1 </dev/null &
echo $! >"$W/kubelet.pid"
wait_for "kubelet healthz on 127.0.0.1:$HEALTHZ" curl -fsS "http://127.0.0.1:$HEALTHZ/healthz"

# The static pods.
for m in "$HERE"/manifests/*.yaml; do
	sed "s#localhost/berth-kl/busybox:latest#$IMG#" "$m" >"$W/manifests/$(basename "$m")"
done

# Static pods are named after their manifest's name and the node.
pod_id() { "${CRICTL[@]}" pods -q --name "^$1-$NODE\$" --state Ready --namespace default | head -n1; }
ready() { [ -n "$(pod_id "$1")" ]; }
ctr_id() { "${CRICTL[@]}" ps -a -q --name "^$1\$" | head -n1; }
running() { [ -n "$("${CRICTL[@]}" ps -q --name "^$1\$" --state Running)" ]; }
# attempts NAME: the highest attempt (restart count) of container NAME.
attempts() { "${CRICTL[@]}" ps -a --name "^$1\$" -o json | jq '[.containers[].metadata.attempt] | max // 0'; }
attempts_at_least() { [ "$(attempts "$1")" -ge "$2" ]; }

for p in web shared probe crash; do wait_for "pod $p ready" ready "$p"; done

# web: httpd on the pod IP, from the host.
WEB_IP=$("${CRICTL[@]}" inspectp "$(pod_id web)" | jq -r '.status.network.ip')
log "web pod IP $WEB_IP"
wait_for "httpd answers on http://$WEB_IP:8080/" sh -c "curl -fsS --max-time 5 http://$WEB_IP:8080/ | grep -q 'hello from berth'"
wait_for "container httpd Ready through the readiness probe (kubelet's own HTTP API)" \
	sh -c "curl -fsS --max-time 5 -k https://127.0.0.1:$PORT/pods | jq -e '.items[] | select(.metadata.name | startswith(\"web-\")) | .status.containerStatuses[0].ready == true'"
# exec through the streaming server, as kubectl exec would reach it.
out=$("${CRICTL[@]}" exec "$(ctr_id httpd)" cat /www/index.html)
[ "$out" = "hello from berth" ] || die "crictl exec in httpd gave $out"
log "ok: crictl exec in httpd"

# shared: the reader reads what the writer writes in their emptyDir.
wait_for "reader reads the writer's file" sh -c "${CRICTL[*]} logs $(ctr_id reader) 2>&1 | grep -q read-ok"

# probe: the exec liveness probe fails after 8s, kubelet restarts the container.
wait_for "liveness probe restart of container live" attempts_at_least live 1
# crash: restartPolicy Always restarts the exiting container (back-off 10s, 20s...).
wait_for "container exits restarted twice" attempts_at_least exits 2
log "restart counts: live $(attempts live), exits $(attempts exits)"
"$BIN/berth" --root "$W/root" --runroot "$W/run" --namespace k8s.io ps -a >&2

# Logs where kubelet put them: PODLOGS/NAMESPACE_NAME_UID/CONTAINER/N.log.
wait_for "httpd's log under $W/pods" sh -c "cat $W/pods/default_web-*/httpd/0.log | grep -q 'response:200'"
find "$W/pods" -name '*.log' >&2

# Removing a manifest removes its pod.
rm "$W/manifests/web.yaml"
gone() { [ -z "$("${CRICTL[@]}" pods -q --name '^web-' )" ]; }
wait_for "pod web removed after its manifest went" gone
if curl -fsS --max-time 3 "http://$WEB_IP:8080/" >/dev/null 2>&1; then die "web still answers after removal"; fi

log "PASS: kubelet runs static pods on berthd"
if [ -n "${KL_KEEP:-}" ]; then
	log "left running; end with: $0 cleanup $W"
fi
