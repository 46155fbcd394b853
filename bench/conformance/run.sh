#!/usr/bin/env bash
# bench/conformance/run.sh: run the OCI runtime-tools validation suite against
# a runtime (default bin/berth-runtime) and beside a reference runtime (default
# Debian's runc), and print a table of TAP results per test plus the details of
# every failure of the runtime under test. See bench/conformance/README.md.
#
#   bench/conformance/run.sh [RUNTIME]          # as root
#
# Environment:
#   REF_RUNTIME            reference runtime (default /usr/sbin/runc; "none": no reference)
#   RUNTIME_TOOLS_VERSION  runtime-tools module version (default below)
#   CONFORMANCE_DIR        work directory (default .tmp/conformance in the repo)
#   TEST_TIMEOUT           seconds per validation program (default 60)
#   TESTS                  space-separated subset of validation/<name> (default all)
#   DETAIL_LINES           lines of YAML diagnostics printed per failing TAP line (default 40)
#
# Builds from the Go module cache (or the Go module proxy when the module is not
# cached yet); once the modules are cached it runs offline. Not part of
# `make test`: it needs root, runs ~120 real containers and takes ~10 minutes.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
RT_VERSION=${RUNTIME_TOOLS_VERSION:-v0.9.1-0.20250523060157-0ea5ed0382a2}
RT_MODULE=github.com/opencontainers/runtime-tools
WORK=${CONFORMANCE_DIR:-$REPO/.tmp/conformance}
TIMEOUT=${TEST_TIMEOUT:-60}
DETAIL_LINES=${DETAIL_LINES:-40}
REF=${REF_RUNTIME:-/usr/sbin/runc}
UNDER_TEST=${1:-$REPO/bin/berth-runtime}
GO=${GO:-go}

die() { echo "conformance: $*" >&2; exit 2; }
log() { echo "conformance: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (the suite creates real containers)"
UNDER_TEST=$(readlink -f "$(command -v "$UNDER_TEST" || echo "$UNDER_TEST")")
[ -x "$UNDER_TEST" ] || die "runtime under test not found or not executable: $UNDER_TEST (run make build)"
if [ "$REF" = none ] || [ -z "$REF" ]; then
	REF=""
else
	REF=$(readlink -f "$(command -v "$REF" || echo "$REF")")
	if [ ! -x "$REF" ]; then
		log "reference runtime $REF not found: running without one"
		REF=""
	fi
fi
for tool in tar timeout awk; do command -v $tool >/dev/null || die "needs $tool"; done

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# ---------------------------------------------------------------------------
# Build runtimetest and the validation programs (cached per module version).
# ---------------------------------------------------------------------------
BUILD=$WORK/runtime-tools-$RT_VERSION
if [ ! -f "$BUILD/.built" ]; then
	log "building $RT_MODULE@$RT_VERSION in $BUILD"
	modtmp=$(mktemp -d)
	# Outside any module, so the repo's go.mod is not touched.
	moddir=$(cd "$modtmp" && GO111MODULE=on GOFLAGS=-mod=mod "$GO" mod download -json "$RT_MODULE@$RT_VERSION" |
		awk -F'"' '$2 == "Dir" { print $4 }') || true
	rmdir "$modtmp"
	[ -n "$moddir" ] && [ -d "$moddir" ] || die "cannot download $RT_MODULE@$RT_VERSION"
	rm -rf "$BUILD"
	mkdir -p "$BUILD"
	cp -r "$moddir" "$BUILD/src"
	chmod -R u+w "$BUILD/src"
	# A module zip keeps vendor/modules.txt but not the vendored code; build
	# from the module cache instead.
	rm -rf "$BUILD/src/vendor"
	(
		cd "$BUILD/src"
		export GOFLAGS="-buildvcs=false -mod=mod"
		"$GO" mod download
		CGO_ENABLED=0 "$GO" build -tags "netgo osusergo" -o "$BUILD/runtimetest" ./cmd/runtimetest
		mkdir -p "$BUILD/bin"
		"$GO" build -o "$BUILD/bin/" ./validation/...
	)
	# util.PrepareBundle untars rootfs-$GOARCH.tar.gz (the module ships amd64 and 386).
	ROOTFS_TAR=rootfs-$("$GO" env GOARCH).tar.gz
	[ -f "$BUILD/src/$ROOTFS_TAR" ] || die "the module has no $ROOTFS_TAR"
	cp "$BUILD/src/$ROOTFS_TAR" "$BUILD/"
	touch "$BUILD/.built"
fi

# The table and details are made by a small Go program of this repo.
(cd "$REPO" && "$GO" build -o "$WORK/report" ./bench/conformance/report) || die "cannot build bench/conformance/report"

ALL_TESTS=$(cd "$BUILD/bin" && ls)
TESTS=${TESTS:-$ALL_TESTS}
for t in $TESTS; do [ -x "$BUILD/bin/$t" ] || die "no validation test $t (have: $(echo $ALL_TESTS))"; done

# ---------------------------------------------------------------------------
# Run the suite against each runtime.
# ---------------------------------------------------------------------------
# Each runtime gets its own --root (through a wrapper, since the suite calls
# the runtime with no global options), so every container found there after a
# test is one the suite left; they are killed and deleted. The suite's
# bundles go to a private TMPDIR. Cgroup directories the suite's cgroupsPath
# values name (cgrouptest, testdir) that did not exist before the run and are
# left over are reported and removed when empty.
RESULTS=$WORK/results
STATE_BASE=/run/berth-conformance.$$
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

leftover_cgroups() {
	# Other containers' cgroups come and go while find walks: ignore its errors.
	{ find /sys/fs/cgroup -mindepth 2 -maxdepth 6 -type d \( -name cgrouptest -o -name testdir \) 2>/dev/null || true; } | sort
}
leftover_cgroups >"$WORK/cgroups.before"

cleanup_cgroups() { # $1: file to record leftovers in
	leftover_cgroups | comm -13 "$WORK/cgroups.before" - >"$1.tmp" || true
	if [ -s "$1.tmp" ]; then
		cp "$1.tmp" "$1"
		# Deepest first; rmdir only removes empty cgroups with no tasks.
		while read -r d; do
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		done <"$1.tmp"
	fi
	rm -f "$1.tmp"
}

# Mounts left in this (the host's) mount namespace under the suite's
# bundles: a runtime that honours a config without a mount namespace
# (linux_ns_itype) mounts the rootfs there. Recorded, then detached.
cleanup_mounts() { # $1 directory $2 file to record leftovers in
	local m
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo >"$2.tmp"
	if [ -s "$2.tmp" ]; then
		cp "$2.tmp" "$2"
		# Deepest first.
		sort -r "$2.tmp" | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	rm -f "$2.tmp"
}

cleanup_containers() { # $1 runtime $2 state root $3 file to record leftovers in
	local ids id
	ids=$("$1" --root "$2" list -q 2>/dev/null || true)
	[ -n "$ids" ] || return 0
	echo "$ids" >"$3"
	for id in $ids; do
		"$1" --root "$2" kill "$id" KILL >/dev/null 2>&1 || true
		"$1" --root "$2" delete --force "$id" >/dev/null 2>&1 || true
	done
	ids=$("$1" --root "$2" list -q 2>/dev/null || true)
	[ -z "$ids" ] || echo "not deleted: $ids" >>"$3"
}

run_suite() { # $1 label $2 runtime
	local label=$1 rt=$2 out=$RESULTS/$1 state=$STATE_BASE/$1
	local cwd=$WORK/cwd-$label tmp=$WORK/tmp-$label wrapper=$WORK/runtime-$label t rc
	mkdir -p "$out" "$state" "$cwd" "$tmp"
	# The suite copies these from its working directory into each bundle.
	cp "$BUILD/runtimetest" "$BUILD"/rootfs-*.tar.gz "$cwd/"
	cat >"$wrapper" <<EOF
#!/bin/sh
unset TMPDIR
exec "$rt" --root "$state" "\$@"
EOF
	chmod +x "$wrapper"
	"$rt" --version 2>/dev/null | head -1 >"$out/.version" || true
	for t in $TESTS; do
		printf 'conformance: %-6s %s\n' "$label" "$t" >&2
		rc=0
		(cd "$cwd" && RUNTIME=$wrapper TMPDIR=$tmp \
			timeout -k 5 "$TIMEOUT" "$BUILD/bin/$t" >"$out/$t.tap" 2>"$out/$t.stderr") || rc=$?
		echo "$rc" >"$out/$t.rc"
		cleanup_containers "$rt" "$state" "$out/$t.leftover-containers"
		cleanup_cgroups "$out/$t.leftover-cgroups"
		cleanup_mounts "$tmp" "$out/$t.leftover-mounts"
	done
	# Bundles the suite did not remove (some programs never clean up).
	cleanup_mounts "$tmp" "$out/.leftover-mounts"
	rm -rf --one-file-system "$tmp" "$state" || log "could not remove $tmp or $state"
}

# Interrupted: clean up what the program running at the time left.
on_exit() {
	local label rt
	for label in "$LABEL_UT" "$LABEL_REF"; do
		[ -n "$label" ] && [ -d "$STATE_BASE/$label" ] || continue
		rt=$UNDER_TEST
		[ "$label" = "$LABEL_UT" ] || rt=$REF
		mkdir -p "$RESULTS/$label"
		cleanup_containers "$rt" "$STATE_BASE/$label" "$RESULTS/$label/.exit.leftover-containers"
		cleanup_mounts "$WORK/tmp-$label" "$RESULTS/$label/.exit.leftover-mounts"
		rm -rf --one-file-system "$WORK/tmp-$label" "$STATE_BASE/$label" 2>/dev/null || true
	done
	cleanup_cgroups "$RESULTS/.exit.leftover-cgroups"
	rmdir "$STATE_BASE" 2>/dev/null || true
}
trap on_exit EXIT
trap 'exit 130' INT TERM

LABEL_UT=$(basename "$UNDER_TEST")
LABEL_REF=""
[ -z "$REF" ] || LABEL_REF=$(basename "$REF")
[ "$LABEL_UT" != "$LABEL_REF" ] || LABEL_REF="$LABEL_REF-ref"

run_suite "$LABEL_UT" "$UNDER_TEST"
[ -z "$REF" ] || run_suite "$LABEL_REF" "$REF"
rmdir "$STATE_BASE" 2>/dev/null || true

# ---------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------
{
	echo "runtime-tools $RT_VERSION; timeout ${TIMEOUT}s per validation program; results in $RESULTS"
	echo "under test: $UNDER_TEST"
	[ -z "$REF" ] || echo "reference:  $REF"
} >"$RESULTS/report.txt"
rc=0
"$WORK/report" -results "$RESULTS" -runtime "$LABEL_UT" ${LABEL_REF:+-ref "$LABEL_REF"} \
	-detail-lines "$DETAIL_LINES" >>"$RESULTS/report.txt" || rc=$?
cat "$RESULTS/report.txt"
# 0: nothing the runtime under test fails that the reference passes; 1: some
# regression (see the report); 2: the report could not be made.
exit $rc
