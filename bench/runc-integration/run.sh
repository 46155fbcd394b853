#!/bin/bash
# Run runc's own bats integration suite (tests/integration/*.bats from the
# runc source release) against berth-runtime, and against a baseline runtime
# (Debian's runc by default), one .bats file at a time, and print a
# pass/fail/skip table per file. See README.md beside this file.
#
# usage: run.sh [-r berth|baseline|both] [-t FILE_SECONDS] [file.bats ...]
#
# Needs root. Works offline once the runc module (and its dependencies) are in
# the Go module cache and the Debian packages below are installed or in apt's
# cache. Not part of `make test`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

RUNC_VERSION=${RUNC_VERSION:-v1.3.3}
WORKDIR=${WORKDIR:-/tmp/berth-runc-integration}
OUT=${OUT:-$REPO/bench/out/runc-integration}
BERTH=${BERTH:-$REPO/bin/berth-runtime}
BASELINE=${BASELINE:-/usr/sbin/runc}
FILE_TIMEOUT=${FILE_TIMEOUT:-1800}
# A process of the tests still there after this many seconds is killed (see
# watchdog). Not bats' own BATS_TEST_TIMEOUT: its countdown is a background
# job of the test's shell, so a test's bare `wait` (events.bats) waits for it.
TEST_TIMEOUT=${TEST_TIMEOUT:-240}
WHICH=both

while getopts "r:t:h" opt; do
	case $opt in
	r) WHICH=$OPTARG ;;
	t) FILE_TIMEOUT=$OPTARG ;;
	*)
		sed -n '2,11p' "$0"
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))

[ "$(id -u)" -eq 0 ] || {
	echo "run.sh: needs root" >&2
	exit 1
}

log() { echo "== $*" >&2; }

# What /sys/fs/cgroup held before this run (cleanup_leftovers removes only
# directories the suite made there).
CGROUP_DIRS_BEFORE=$(ls /sys/fs/cgroup 2>/dev/null | tr '\n' ' ')

# ---------------------------------------------------------------- packages
# bats runs the suite; jq/gawk/iproute2/util-linux are used by the helpers;
# gcc builds the small C test programs (dev.bats, hooks_so.bats);
# busybox-static and the listed host packages make the two test images.
ensure_packages() {
	local want=(bats jq gawk gcc libseccomp-dev xz-utils busybox-static util-linux mount iproute2 coreutils libc-bin bash findutils grep sed)
	local missing=() p
	for p in "${want[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
	fi
}

# ---------------------------------------------------------------- runc source
SRC=$WORKDIR/runc-$RUNC_VERSION
# Bump when the way the source, helpers or images are prepared changes.
READY_STAMP=3

fetch_source() {
	[ -f "$SRC/.berth-ready" ] && [ "$(cat "$SRC/.berth-ready")" = "$READY_STAMP" ] && return
	local moddir dir
	moddir=$WORKDIR/mod
	mkdir -p "$moddir"
	[ -f "$moddir/go.mod" ] || (cd "$moddir" && go mod init runcintegration >/dev/null 2>&1)
	log "go mod download github.com/opencontainers/runc@$RUNC_VERSION"
	dir=$(cd "$moddir" && GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" | jq -r .Dir)
	rm -rf "$SRC"
	cp -a "$dir" "$SRC"
	chmod -R u+w "$SRC"
	# Module zips carry no file modes: make the scripts executable again.
	grep -rlI --exclude-dir=vendor -m1 '^#!' "$SRC" | xargs -r chmod +x
	# The module zip keeps only vendor/modules.txt: build in module mode.
	rm -rf "$SRC/vendor"

	log "building runc's test helpers (tests/cmd/*)"
	mkdir -p "$SRC/tests/cmd/_bin"
	local b
	for b in recvtty sd-helper seccompagent fs-idmap pidfd-kill remap-rootfs; do
		# seccompagent does nothing without the seccomp tag ("Not
		# supported, to use this compile with build tag: seccomp."):
		# runc's Makefile builds its helpers with it (libseccomp-dev).
		(cd "$SRC" && CGO_ENABLED=1 GOFLAGS=-mod=mod go build -tags seccomp -o tests/cmd/_bin/ "./tests/cmd/$b")
	done
	if [ -d "$SRC/contrib/cmd/memfd-bind" ]; then
		(cd "$SRC" && GOFLAGS=-mod=mod go build -o contrib/cmd/memfd-bind/ ./contrib/cmd/memfd-bind) || true
	fi
	build_images
	echo "$READY_STAMP" >"$SRC/.berth-ready"
}

# ---------------------------------------------------------------- images
# get-images.sh downloads a busybox and a Debian "buster slim" tarball unless
# tests/integration/testdata/{busybox,debian}-amd64.tar.xz exist: make both
# here, from this host's Debian packages.
build_images() {
	local arch td
	arch=$(go env GOARCH)
	td=$SRC/tests/integration/testdata
	build_busybox "$td/busybox-$arch.tar.xz"
	build_debian "$td/debian-$arch.tar.xz"
}

build_busybox() {
	local dest=$1 r
	r=$(mktemp -d "$WORKDIR/busybox.XXXXXX")
	chmod 755 "$r" # mktemp made it 0700: the image's / must be searchable by any user
	log "busybox image from busybox-static -> $dest"
	mkdir -p "$r"/{bin,etc,home,root,tmp,var/spool/mail,var/www,usr/sbin,dev,proc,sys}
	chmod 1777 "$r/tmp"
	chmod 700 "$r/root"
	cp /bin/busybox "$r/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -f "$r/bin/busybox" "$r/bin/$a"
	done
	cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
	cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
EOF
	echo 'root:*:19000:0:99999:7:::' >"$r/etc/shadow"
	chmod 600 "$r/etc/shadow"
	touch "$r/etc/hostname" "$r/etc/hosts" "$r/etc/resolv.conf"
	tar --numeric-owner -C "$r" -cf - . | xz -T1 -1 >"$dest"
	rm -rf "$r"
}

# pkg_closure prints the dependency closure (Depends + Pre-Depends, first
# alternative) of the given installed packages.
pkg_closure() {
	local -A seen=()
	local queue=("$@") p deps d
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		p=${p%%:*}
		[ -n "$p" ] && [ -z "${seen[$p]:-}" ] || continue
		dpkg -s "$p" >/dev/null 2>&1 || continue
		seen[$p]=1
		echo "$p"
		deps=$(dpkg-query -W -f='${Pre-Depends}, ${Depends}' "$p" 2>/dev/null)
		IFS=',' read -ra ds <<<"$deps"
		for d in "${ds[@]}"; do
			d=${d%%|*}
			d=${d%%(*}
			d=$(echo "$d" | tr -d ' ')
			[ -n "$d" ] && queue+=("$d")
		done
	done
}

build_debian() {
	local dest=$1 r list f dir
	r=$(mktemp -d "$WORKDIR/debian.XXXXXX")
	chmod 755 "$r"
	log "Debian image from this host's packages -> $dest"
	# usrmerge layout, as on the host.
	mkdir -p "$r"/usr/{bin,sbin,lib,lib64} "$r"/{etc,home,root,tmp,var/tmp,run,dev,proc,sys,mnt,opt,srv}
	chmod 1777 "$r/tmp" "$r/var/tmp"
	ln -s usr/bin "$r/bin"
	ln -s usr/sbin "$r/sbin"
	ln -s usr/lib "$r/lib"
	ln -s usr/lib64 "$r/lib64"
	list=$(mktemp)
	# shellcheck disable=SC2046
	for p in $(pkg_closure base-files bash dash coreutils util-linux mount findutils grep sed libc-bin gawk procps); do
		dpkg -L "$p" 2>/dev/null || true
	done | sort -u | while read -r f; do
		case $f in
		/usr/share/doc/* | /usr/share/man/* | /usr/share/info/* | /usr/share/locale/* | /usr/share/lintian/*) continue ;;
		esac
		[ -e "$f" ] || [ -L "$f" ] || continue
		[ -d "$f" ] && [ ! -L "$f" ] && continue
		dir=$(realpath "$(dirname "$f")")
		echo "${dir#/}/$(basename "$f")"
	done | sort -u >"$list"
	tar -C / -cf - --no-recursion -T "$list" | tar -C "$r" -xf -
	rm -f "$list"
	ln -sf dash "$r/usr/bin/sh"
	[ -e "$r/usr/bin/awk" ] || ln -s gawk "$r/usr/bin/awk"
	cp /usr/share/base-passwd/passwd.master "$r/etc/passwd" 2>/dev/null || grep -E '^(root|daemon|bin|sys|nobody):' /etc/passwd >"$r/etc/passwd"
	cp /usr/share/base-passwd/group.master "$r/etc/group" 2>/dev/null || grep -E '^(root|daemon|bin|sys|tty|nogroup):' /etc/group >"$r/etc/group"
	touch "$r/etc/hostname" "$r/etc/hosts" "$r/etc/resolv.conf"
	ldconfig -r "$r"
	tar --numeric-owner -C "$r" -cf - . | xz -T1 -1 >"$dest"
	rm -rf "$r"
}

# ---------------------------------------------------------------- cleanup
# Kill whatever the tests of one file left running: only processes whose root
# directory is a bundle under that file's own TMPDIR (all of them were started
# by this script), then delete leftover container states there and remove
# empty cgroups the suite created with its fixed name.
cleanup_leftovers() {
	local rt=$1 tmp=$2 pid root cwd st id pids=() fr
	for st in $(find "$tmp" -maxdepth 4 -type d -name state 2>/dev/null); do
		for id in $(timeout 30 "$rt" --root "$st" list -q 2>/dev/null); do
			log "leftover container $id in $st: delete -f"
			timeout 30 "$rt" --root "$st" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
	mapfile -t pids < <(pids_under "$tmp")
	for pid in "${pids[@]}"; do
		log "leftover process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)): SIGKILL"
		# A process in a frozen cgroup v1 freezer dies only once thawed.
		fr=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup" 2>/dev/null)
		if [ -n "$fr" ] && [ "$fr" != / ] && [ -w "/sys/fs/cgroup/freezer$fr/freezer.state" ]; then
			echo THAWED >"/sys/fs/cgroup/freezer$fr/freezer.state" 2>/dev/null || true
		fi
		kill -9 "$pid" 2>/dev/null || true
	done
	sleep 0.5
	local d
	for d in /sys/fs/cgroup/*/runc-cgroups-integration-test /sys/fs/cgroup/runc-cgroups-integration-test; do
		[ -d "$d" ] || continue
		find "$d" -mindepth 1 -name freezer.state -exec sh -c 'echo THAWED > "$1"' _ {} \; 2>/dev/null || true
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	# runc's create_parent does `mkdir -p /sys/fs/cgroup/SUBSYS/...` for
	# every subsystem /proc/cgroups lists, mounted or not: on a host where
	# /sys/fs/cgroup is a tmpfs and some controllers are not mounted there
	# (here hugetlb, net_cls, net_prio, perf_event), that makes plain
	# directories, which other tools then take for controllers (podman's
	# conmon writes a `tasks` file into them). Remove the empty ones the
	# suite left; a directory with anything else in it is left and named.
	local sub
	for sub in $(awk '!/^#/ {print $1}' /proc/cgroups); do
		d=/sys/fs/cgroup/$sub
		[ -d "$d" ] && ! mountpoint -q "$d" || continue
		[[ " $CGROUP_DIRS_BEFORE " != *" $sub "* ]] || continue # the host's own
		[ "$(stat -f -c %T /sys/fs/cgroup)" = tmpfs ] || continue
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		[ ! -e "$d" ] || log "left $d: not a mounted controller, and not empty"
	done
	umount_under "$tmp"
	rm -rf "$tmp" 2>/dev/null || true
}

# pids_under TMP prints the processes whose root or cwd is under TMP, or whose
# command line names it: the containers, runtimes and helpers of the tests run
# with that TMPDIR (a directory of this script's own).
pids_under() {
	local tmp=$1 pid root cwd
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		root=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
		# bats itself and the shells of the tests are bats' business.
		grep -qF bats-core/ "/proc/$pid/cmdline" 2>/dev/null && continue
		cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
		case "$root $cwd" in
		"$tmp"/* | *" $tmp"/*)
			echo "$pid"
			continue
			;;
		esac
		# recvtty, pidfd-kill, seccompagent and the runtimes name it.
		if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$tmp/"; then
			echo "$pid"
		fi
	done
}

# watchdog TMP: while the file runs, any process of its tests (see
# pids_under) still there after longer than a test may last belongs to a test
# that bats gave up on; its open stdout would block bats for good. Thaw its
# freezer cgroup if frozen (a frozen process cannot die) and kill it.
watchdog() {
	local tmp=$1 pid key fr st
	local -A since=()
	while sleep 15; do
		for pid in $(pids_under "$tmp"); do
			key=$pid.$(awk '{print $22}' "/proc/$pid/stat" 2>/dev/null)
			: "${since[$key]:=$SECONDS}"
			[ $((SECONDS - since[$key])) -gt "$TEST_TIMEOUT" ] || continue
			fr=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup" 2>/dev/null)
			st=/sys/fs/cgroup/freezer$fr/freezer.state
			log "watchdog: $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-60)) outlived a test: SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
			if [ -n "$fr" ] && [ "$fr" != / ] && [ "$(cat "$st" 2>/dev/null)" != THAWED ]; then
				echo THAWED >"$st" 2>/dev/null || true
			fi
			unset "since[$key]"
		done
	done
}

umount_under() {
	local tmp=$1 m
	for m in $(awk -v p="$tmp/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

# ---------------------------------------------------------------- run
count_tap() {
	# prints "pass fail skip planned"
	awk '
	/^1\.\.[0-9]+/ { split($0, a, "."); planned = a[3] }
	/^ok / { if ($0 ~ /# skip/) s++; else p++ }
	/^not ok / { f++ }
	END { printf "%d %d %d %d\n", p, f, s, planned }' "$1"
}

# run_file NAME RUNTIME FILE runs one .bats file against one runtime.
run_file() {
	local name=$1 rt=$2 f=$3
	local dir=$OUT/$name
	mkdir -p "$dir"
	local summary=$dir/summary.tsv
	touch "$summary"
	local base tmp rc
	{
		base=$(basename "$f")
		tmp=$WORKDIR/tmp/$name/${base%.bats}
		rm -rf "$tmp"
		mkdir -p "$tmp"
		chmod 755 "$WORKDIR" "$WORKDIR/tmp" "$WORKDIR/tmp/$name" "$tmp"
		log "$name: $base"
		rc=0
		watchdog "$tmp" &
		local wd=$!
		local tap=$dir/${base%.bats}.tap
		if [ -n "${NO_TTY:-}" ]; then
			(cd "$SRC/tests/integration" &&
				RUNC="$rt" TMPDIR="$tmp" timeout -k 10 "$FILE_TIMEOUT" bats -t "$base") >"$tap" 2>&1 </dev/null || rc=$?
		else
			# Like runc's CI (script -e -c 'make localintegration'): the
			# tests get a controlling terminal; runc 1.1's foreground
			# `run` of a terminal: true container opens /dev/tty.
			# script's stdin must not end: at EOF script writes a byte
			# to its terminal, which a foreground terminal container
			# (berth's and runc's alike) echoes as a stray "^@" line.
			# A fifo held open read-write here never ends.
			local hold hfd
			hold=$(mktemp -u "$WORKDIR/stdin.XXXXXX")
			mkfifo "$hold"
			exec {hfd}<>"$hold"
			rm -f "$hold"
			(cd "$SRC/tests/integration" &&
				RUNC="$rt" TMPDIR="$tmp" SHELL=/bin/bash timeout -k 10 "$FILE_TIMEOUT" \
					script -qec "bats -t '$base' >'$tap' 2>&1" /dev/null) >/dev/null 2>&1 <&"$hfd" || rc=$?
			exec {hfd}>&-
		fi
		kill "$wd" 2>/dev/null || true
		wait "$wd" 2>/dev/null || true
		read -r p fl s planned < <(count_tap "$tap")
		local note=""
		[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && note="timeout"
		local missing=$((planned - p - fl - s))
		[ "$missing" -gt 0 ] && note="${note:+$note,}not-run=$missing"
		{
			awk -F'\t' -v f="$base" '$1 != f' "$summary"
			printf '%s\t%d\t%d\t%d\t%s\n' "$base" "$p" "$fl" "$s" "$note"
		} | sort >"$summary.new"
		mv "$summary.new" "$summary"
		printf '   pass %d fail %d skip %d %s\n' "$p" "$fl" "$s" "$note" >&2
		cleanup_leftovers "$rt" "$tmp"
	}
}

table() {
	local a=$OUT/berth/summary.tsv b=$OUT/baseline/summary.tsv
	printf '| file | berth pass | berth fail | berth skip | baseline pass | baseline fail | baseline skip | note |\n'
	printf '|---|---:|---:|---:|---:|---:|---:|---|\n'
	local files
	files=$(cut -f1 "$a" "$b" 2>/dev/null | sort -u)
	local f x y tp=(0 0 0 0 0 0)
	for f in $files; do
		x=$(awk -F'\t' -v f="$f" '$1 == f {print $2" "$3" "$4" "$5}' "$a" 2>/dev/null || true)
		y=$(awk -F'\t' -v f="$f" '$1 == f {print $2" "$3" "$4" "$5}' "$b" 2>/dev/null || true)
		read -r bp bf bs bn <<<"${x:-- - - }"
		read -r rp rf rs rn <<<"${y:-- - - }"
		local note=""
		[ -n "${bn:-}" ] && note="berth: $bn"
		[ -n "${rn:-}" ] && note="${note:+$note; }baseline: $rn"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$f" "$bp" "$bf" "$bs" "$rp" "$rf" "$rs" "$note"
		[[ $bp =~ ^[0-9]+$ ]] && tp[0]=$((tp[0] + bp)) tp[1]=$((tp[1] + bf)) tp[2]=$((tp[2] + bs))
		[[ $rp =~ ^[0-9]+$ ]] && tp[3]=$((tp[3] + rp)) tp[4]=$((tp[4] + rf)) tp[5]=$((tp[5] + rs))
		:
	done
	printf '| **total** | %d | %d | %d | %d | %d | %d | |\n' "${tp[@]}"
}

ensure_packages
mkdir -p "$WORKDIR" "$OUT"
fetch_source

if [ $# -eq 0 ]; then
	set -- $(cd "$SRC/tests/integration" && ls ./*.bats | sed 's|^\./||')
fi

case $WHICH in
berth | both) [ -x "$BERTH" ] || (cd "$REPO" && make build >&2) ;;
esac
# File by file, berth then the baseline, so that both columns fill together.
for f in "$@"; do
	case $WHICH in berth | both) run_file berth "$BERTH" "$f" ;; esac
	case $WHICH in baseline | both) run_file baseline "$BASELINE" "$f" ;; esac
done

table | tee "$OUT/table.md"
