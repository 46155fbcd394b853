#!/usr/bin/env bash
# run.sh boots Debian's kernel under qemu (KVM where usable, else TCG) on a cgroup v2
# initramfs, runs one program in it and exits with that program's status.
#
# Notes of run.sh's own (which accelerator, a fallback from KVM to TCG, how
# long the VM ran) go to stdout with the console, prefixed "run.sh: "; its
# errors go to stderr.
#
# The VM: busybox (from busybox-static) and the given files on a tmpfs root
# (so pivot_root works for containers), proc, sysfs, devtmpfs, cgroup2 at
# /sys/fs/cgroup with every controller enabled in the root's
# cgroup.subtree_control, tmpfs on /tmp and /run, lo up, the kernel modules
# asked for (overlay, veth and bridge by default) loaded. The program runs as
# root in the root cgroup, in /, with BERTH_VM_GUEST=1 in its environment;
# the console (kernel, program stdout and stderr) streams to our stdout.
#
# With --systemd the VM is instead Debian with systemd as PID 1 on the
# unified hierarchy: stage 1 mounts the ext4 image systemd-root.sh builds
# (systemd, dbus, containerd, Podman, busybox; opened with snapshot=on) from
# /dev/vda, copies /berth into it and switches to /sbin/init; the unit
# berth-vm.service runs the program (stage2-systemd) once the system is up,
# as a service in system.slice, with BERTH_VM_SYSTEMD=1 too.
#
# Accelerator: KVM with -cpu host where /dev/kvm is usable, else TCG with
# -cpu max; when qemu exits under KVM before the guest prints its first line
# (a CPU model or MSR the host's KVM refuses, a KVM bug, no permission), or
# has not printed it after BERTH_VM_KVM_START seconds (default 60; a KVM that
# stalls), the same VM boots again under TCG. BERTH_VM_ACCEL=kvm|tcg picks
# the first try.
#
# The kernel package is fetched with apt-get download and unpacked (never
# installed) under $BERTH_VM_CACHE (default: .tmp/vm in the repository), so
# later runs need no download. Everything else lives in a temporary directory
# removed on exit.
#
# Exit status: the program's, or 124 when the VM ran out of time, or 125 when
# the VM could not be built, booted or stopped without reporting a status.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: test/vm/run.sh [options] -- PROGRAM [ARG...]

PROGRAM and ARGs are as the VM sees them: /bin/sh and busybox applets are
there; put anything else there with --file.

options:
  --mem SIZE            guest memory, as qemu -m takes it (default 1024M)
  --smp N               guest CPUs (default 2)
  --timeout SECONDS     stop the VM after this long; exit 124 (default 600)
  --file HOST:VM        copy HOST (file or directory) to absolute path VM
  --env NAME=VALUE      set NAME in the program's environment
  --module NAME         also load kernel module NAME (with its dependencies)
  --cmdline ARGS        add ARGS to the kernel's command line (preempt=full)
  --kernel-log          show kernel messages on the console (default: quiet)
  --systemd             boot Debian with systemd as PID 1 from a disk image
                        (built once by systemd-root.sh, then cached); the
                        program runs from a unit after the boot
USAGE
}

fail() {
	echo "run.sh: error: $*" >&2
	exit 125
}

mem=1024M
smp=2
timeout_s=600
files=()
envs=()
modules=(overlay veth bridge)
kernel_log=0
systemd=0
cmdline=
while [ $# -gt 0 ]; do
	case $1 in
	--mem | --smp | --timeout | --file | --env | --module | --cmdline)
		[ $# -ge 2 ] || fail "$1 needs a value"
		case $1 in
		--mem) mem=$2 ;;
		--smp) smp=$2 ;;
		--timeout) timeout_s=$2 ;;
		--file) files+=("$2") ;;
		--env) envs+=("$2") ;;
		--module) modules+=("$2") ;;
		--cmdline) cmdline="$cmdline $2" ;;
		esac
		shift 2
		;;
	--kernel-log) kernel_log=1; shift ;;
	--systemd) systemd=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; fail "unknown option $1" ;;
	esac
done
[ $# -ge 1 ] || { usage >&2; fail "no program given after --"; }
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || fail "--timeout $timeout_s: want a whole number of seconds"
[[ $smp =~ ^[1-9][0-9]*$ ]] || fail "--smp $smp: want a whole number of CPUs"
[[ $mem =~ ^[1-9][0-9]*[MG]?$ ]] || fail "--mem $mem: want a size such as 1024M or 2G"
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || fail "--env $e: want NAME=VALUE"
done
for f in "${files[@]}"; do
	[[ $f == *:/* ]] || fail "--file $f: want HOSTPATH:/ABSOLUTE/VM/PATH"
	[ -e "${f%%:/*}" ] || fail "--file $f: ${f%%:/*} does not exist"
done
for m in "${modules[@]}"; do
	[[ $m =~ ^[A-Za-z0-9_-]+$ ]] || fail "--module $m: not a module name"
done
[ "$(id -u)" = 0 ] || fail "must run as root (the initramfs needs a /dev/console device node)"
qemu=$(command -v qemu-system-x86_64) ||
	fail "qemu-system-x86_64 not found: install Debian's qemu-system-x86 (it is in .ci/apt-packages)"
[ -x /bin/busybox ] || fail "/bin/busybox not found: install Debian's busybox-static"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${BERTH_VM_CACHE:-$repo/.tmp/vm}
mkdir -p "$cache" || fail "create kernel cache $cache"
cache=$(cd "$cache" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-vm.XXXXXX") || fail "create a temporary directory"
qemu_extra=()
qemu_pid=
tail_pid=
cleanup() {
	# timeout(1) runs qemu in a process group of its own: end that group.
	if [ -n "$qemu_pid" ]; then
		kill -TERM -- "-$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$tail_pid" ]; then
		kill -TERM "$tail_pid" 2>/dev/null || true
		wait "$tail_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# kernel_package prints the name and candidate version of the kernel package
# that linux-image-amd64 depends on, or nothing when apt knows none.
kernel_package() {
	local pkg ver
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }') || true
	[ -n "$pkg" ] || return 0
	ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }') || true
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || return 0
	echo "${pkg}_$ver"
}

# fetch_kernel downloads package $1 (NAME_VERSION) and unpacks it into the
# cache directory of the same name.
fetch_kernel() {
	local dir=$cache/$1 deb
	echo "run.sh: downloading ${1%%_*} ${1#*_} into $cache" >&2
	rm -rf "$dir" "$dir.partial" "$cache/download"
	mkdir -p "$cache/download"
	# _apt must be able to write where apt-get download saves.
	chmod 0777 "$cache/download"
	(cd "$cache/download" && apt-get download -qq "${1%%_*}=${1#*_}") >&2 || return 1
	deb=$(find "$cache/download" -name '*.deb' | head -n 1)
	[ -n "$deb" ] || return 1
	dpkg-deb -x "$deb" "$dir.partial" || return 1
	rm -rf "$cache/download"
	touch "$dir.partial/.complete"
	mv "$dir.partial" "$dir"
	# Older kernels are 400 MB each and no longer used.
	find "$cache" -mindepth 1 -maxdepth 1 -name 'linux-image-*' ! -path "$dir" -exec rm -rf {} +
}

# kernel_dir prints the cache directory holding the unpacked kernel package,
# downloading it if it is not there yet. Stale apt lists name versions the
# archive no longer has: then it updates them once and tries again. Without
# apt lists it falls back to the newest kernel already cached.
kernel_dir() {
	local want dir
	want=$(kernel_package)
	if [ -z "$want" ]; then
		dir=$(find "$cache" -maxdepth 2 -name .complete -path '*/linux-image-*' -printf '%h\n' | sort -V | tail -n 1)
		[ -n "$dir" ] || fail "apt-cache knows no linux-image-amd64 (run apt-get update) and $cache holds no kernel"
		echo "$dir"
		return
	fi
	if [ ! -e "$cache/$want/.complete" ] && ! fetch_kernel "$want"; then
		echo "run.sh: download failed; updating the apt lists and trying again" >&2
		apt-get update -qq >&2 || true
		want=$(kernel_package)
		[ -n "$want" ] || fail "apt-cache knows no linux-image-amd64 after apt-get update"
		if [ ! -e "$cache/$want/.complete" ]; then
			fetch_kernel "$want" || fail "could not download and unpack ${want%%_*} ${want#*_} (see above)"
		fi
	fi
	echo "$cache/$want"
}

# Two runs at once share one download.
exec 9>"$cache/.lock"
flock 9
kdir=$(kernel_dir)
if [ "$systemd" = 1 ]; then
	image=$(bash "$here/systemd-root.sh" "$cache") || exit 125
fi
flock -u 9
exec 9>&-
vmlinuz=$(find "$kdir/boot" -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || fail "no vmlinuz in $kdir/boot"
kver=${vmlinuz##*/vmlinuz-}
moddir=$kdir/lib/modules/$kver

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,newroot,berth/vm/modules.d}
cp /bin/busybox "$root/bin/busybox"
cp "$here/initramfs/init" "$root/init"
cp "$here/initramfs/stage2" "$root/berth/vm/stage2"
if [ "$systemd" = 1 ]; then
	touch "$root/berth/vm/systemd"
	cp "$here/initramfs/stage2-systemd" "$here/initramfs/berth-vm.service" "$root/berth/vm/"
	# The root disk, and what mounting it takes (crc32c: ext4's checksums).
	modules+=(virtio_pci virtio_blk crc32c_generic ext4)
	# snapshot=on: the guest's writes go to a temporary file, never to
	# the cached image, which other runs may be booting at the same time.
	qemu_extra+=(-drive "file=$image,format=raw,if=virtio,snapshot=on")
fi
mknod -m 0600 "$root/dev/console" c 5 1 || fail "mknod $root/dev/console"

# add_module copies module $1 and, first, the modules it depends on (read
# from its .modinfo; the package ships no modules.dep), into the initramfs.
declare -A added=() modpath=()
# One walk of the module tree, not one per module: a module's name has
# underscores where its file may have dashes.
while IFS= read -r ko; do
	name=${ko##*/}
	name=${name%.ko}
	modpath[${name//-/_}]=$ko
done < <(find "$moddir/kernel" -name '*.ko')
add_module() {
	local name=$1 ko dep
	[ -z "${added[$name]:-}" ] || return 0
	added[$name]=1
	ko=${modpath[${name//-/_}]:-}
	[ -n "$ko" ] || fail "kernel module $name not found under $moddir (built in? see $kdir/boot/config-$kver)"
	for dep in $(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
	cp "$ko" "$root/berth/vm/modules.d/$name.ko"
	echo "$name" >>"$root/berth/vm/modules"
}
: >"$root/berth/vm/modules"
for m in "${modules[@]}"; do add_module "$m"; done

for f in "${files[@]}"; do
	src=${f%%:/*}
	dst=/${f#*:/}
	mkdir -p "$root$(dirname "$dst")"
	cp -a -L "$src" "$root$dst" || fail "--file $f: copy failed"
done

# quote prints $1 as one single-quoted shell word.
quote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}
nonce=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
{
	echo "NONCE=$nonce"
	for e in "${envs[@]}"; do echo "export $(quote "$e")"; done
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(quote "$a")"; done
	echo
} >"$root/berth/vm/command"

(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) >"$work/initramfs.cpio" ||
	fail "build the initramfs with busybox cpio"

append="console=ttyS0 panic=-1 rdinit=/init$cmdline"
if [ "$kernel_log" = 0 ]; then append="$append quiet loglevel=1"; fi
if [ "$systemd" = 1 ]; then
	append="$append systemd.unified_cgroup_hierarchy=1"
	if [ "$kernel_log" = 0 ]; then append="$append systemd.show_status=0"; fi
fi

# boot runs qemu with accelerator $1 (kvm or tcg) until it exits or the
# rest of the time runs out, streaming the console to our stdout, and sets
# qemu_status.
log=$work/console.log
boot() {
	local accel cpu left
	case $1 in
	# With KVM the guest gets the host's own CPU model: "-cpu max" asks
	# KVM for features (MSRs) that some hosts' KVM refuses, and qemu then
	# aborts at start ("failed to set MSR 0x10a").
	kvm) accel=kvm cpu=host ;;
	# TCG emulates the CPU in software and works anywhere, many times slower.
	tcg) accel=tcg,thread=multi cpu=max ;;
	esac
	left=$((timeout_s - SECONDS))
	if [ "$left" -lt 1 ]; then
		qemu_status=124
		return
	fi
	# Made here, not by qemu's redirection in the background job: tail -f
	# gives up at once on a file that does not exist yet, and then the
	# console is lost when the machine is busy enough for tail to win that
	# race.
	: >"$log"
	# timeout(1) puts qemu in a new process group and ends it after the
	# time left; run it in the background so the traps above can end it too.
	timeout --kill-after=10 "$left" "$qemu" \
		-nodefaults -no-user-config -no-reboot \
		-machine pc -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
		-display none -monitor none -serial stdio \
		-kernel "$vmlinuz" -initrd "$work/initramfs.cpio" -append "$append" \
		"${qemu_extra[@]}" \
		</dev/null >"$log" 2>&1 &
	qemu_pid=$!
	tail -n +1 -f --pid="$qemu_pid" "$log" &
	tail_pid=$!
	# A KVM that neither starts the guest nor exits (a host KVM bug, a
	# nested hypervisor that stalls) would hold the caller until the whole
	# timeout: the guest prints stage 1 within seconds under KVM, so a VM
	# that has not after $kvm_start_s seconds is ended and tried under TCG.
	watch_pid=
	if [ "$1" = kvm ]; then
		(
			for ((i = 0; i < kvm_start_s; i++)); do
				sleep 1
				grep -q '^berth-vm: stage 1' "$log" && exit 0
				kill -0 "$qemu_pid" 2>/dev/null || exit 0
			done
			: >"$work/kvm-stalled"
			kill -TERM -- "-$qemu_pid" 2>/dev/null
		) &
		watch_pid=$!
	fi
	set +e
	wait "$qemu_pid"
	qemu_status=$?
	set -e
	qemu_pid=
	if [ -n "$watch_pid" ]; then
		kill "$watch_pid" 2>/dev/null || true
		wait "$watch_pid" 2>/dev/null || true
	fi
	wait "$tail_pid" || true
	tail_pid=
}

# BERTH_VM_ACCEL: auto (KVM where /dev/kvm is usable, else TCG), kvm (try
# KVM even so; the fallback below still applies) or tcg.
case ${BERTH_VM_ACCEL:-auto} in
auto) if [ -w /dev/kvm ]; then first=kvm; else first=tcg; fi ;;
kvm | tcg) first=$BERTH_VM_ACCEL ;;
*) fail "BERTH_VM_ACCEL=$BERTH_VM_ACCEL: want auto, kvm or tcg" ;;
esac
# BERTH_VM_KVM_START: seconds KVM gets to reach stage 1 (default 60).
kvm_start_s=${BERTH_VM_KVM_START:-60}
[[ $kvm_start_s =~ ^[1-9][0-9]*$ ]] || fail "BERTH_VM_KVM_START=$kvm_start_s: want a whole number of seconds"
SECONDS=0
echo "run.sh: booting the VM with $first"
boot "$first"
# A VM that got as far as stage 1 has started; one that did not, under KVM,
# failed for a reason of the host's (a CPU model, a KVM bug, no permission
# on /dev/kvm): the same VM runs, slower, under TCG.
if [ "$first" = kvm ] && [ -e "$work/kvm-stalled" ]; then
	echo "run.sh: the VM did not start under KVM within ${kvm_start_s}s (no stage 1 line); stopped it; falling back to TCG (software emulation, slower)"
	boot tcg
elif [ "$first" = kvm ] && [ "$qemu_status" != 124 ] && ! grep -q '^berth-vm: stage 1' "$log"; then
	echo "run.sh: qemu could not start the VM under KVM (status $qemu_status, see above); falling back to TCG (software emulation, slower)"
	boot tcg
fi
echo "run.sh: the VM ran for ${SECONDS}s"

if [ "$qemu_status" = 124 ]; then
	echo "run.sh: error: the VM did not finish within ${timeout_s}s; stopped it" >&2
	exit 124
fi
# The marker may follow a last line the program left unterminated.
status=$(tr -d '\r' <"$log" | sed -n "s/^.*berth-vm: exit $nonce \([0-9]*\)\$/\1/p" | tail -n 1)
if [ -z "$status" ]; then
	fail "the VM stopped (qemu status $qemu_status) without reporting the program's exit status; see the console above"
fi
exit "$status"
