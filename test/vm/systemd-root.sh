#!/usr/bin/env bash
# systemd-root.sh CACHE prints the path of an ext4 image holding a Debian
# root with systemd (as /sbin/init), dbus, containerd (with runc) and Podman
# (with conmon), building it under CACHE first if it is not there yet.
# run.sh --systemd boots it with systemd as PID 1.
#
# The root is made by debootstrap (minbase) from the Debian mirror the
# host's apt uses, for the host's own release (the kernel run.sh boots comes
# from there too), then trimmed and written into a sparse image with
# mke2fs -d. The image lives in CACHE/systemd-root-SUITE-KEY, KEY a hash of
# the suite, the package list and the recipe number: changing them makes a
# new image (older ones are removed). Building takes a few minutes and needs the mirror; later runs
# use the cached image. qemu opens it with snapshot=on, so the guest's
# writes never reach it.
#
# The downloaded packages stay in CACHE/debs, so a changed recipe downloads
# only what is new. Environment: BERTH_VM_MIRROR overrides the mirror URL.
set -euo pipefail

fail() {
	echo "run.sh: error: $*" >&2
	exit 125
}

[ $# = 1 ] || fail "usage: systemd-root.sh CACHE"
cache=$1

# The guest's packages. containerd brings runc (its shim's default
# runtime); Podman brings conmon and crun, and needs a network stack
# (debootstrap resolves no virtual packages: containernetworking-plugins
# provides container-network-stack); busybox-static is what test bundles
# are built from. Recommends are not installed.
packages=systemd,systemd-sysv,dbus,busybox-static,containerd,runc,podman,conmon,containernetworking-plugins

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || fail "no VERSION_CODENAME in /etc/os-release: cannot tell which Debian release to bootstrap"
# Bump when the steps below change what the image holds.
recipe=1
key=$(echo "$suite $packages $recipe" | sha256sum | cut -c1-12)
dir=$cache/systemd-root-$suite-$key
if [ -e "$dir/.complete" ]; then
	echo "$dir/root.ext4"
	exit 0
fi

command -v debootstrap >/dev/null ||
	fail "debootstrap not found: install Debian's debootstrap (it is in .ci/apt-packages) to build the systemd guest"
command -v mke2fs >/dev/null || fail "mke2fs not found: install Debian's e2fsprogs"

# mirror prints the URL of the Debian archive apt uses for suite $1.
mirror() {
	apt-cache policy 2>/dev/null |
		awk -v s="$1/main" '$3 == s && $2 ~ /^https?:\/\// { print $2; exit }'
}
url=${BERTH_VM_MIRROR:-$(mirror "$suite")}
[ -n "$url" ] || fail "apt knows no mirror for $suite/main (run apt-get update, or set BERTH_VM_MIRROR)"

echo "run.sh: building the systemd guest root ($suite from $url) into $dir; this takes a few minutes once" >&2
rm -rf "$dir.partial"
mkdir -p "$dir.partial"
root=$dir.partial/root
# debootstrap has no timeout of its own; a stalled mirror must not hang CI.
# The downloaded packages are kept in CACHE/debs for the next recipe.
mkdir -p "$cache/debs"
if ! timeout 1800 debootstrap --variant=minbase --cache-dir="$cache/debs" --include="$packages" \
	"$suite" "$root" "$url" >"$dir.partial/debootstrap.log" 2>&1; then
	tail -n 20 "$dir.partial/debootstrap.log" >&2
	fail "debootstrap $suite from $url failed (log above; full log in $dir.partial/debootstrap.log)"
fi
# debootstrap only warns about packages it could not configure.
if audit=$(dpkg --root="$root" --audit) && [ -n "$audit" ]; then
	echo "$audit" >&2
	fail "debootstrap left packages unconfigured (above; log in $dir.partial/debootstrap.log)"
fi

# Units that would slow the boot, wait for a console, or start daemons the
# tests start themselves with their own configuration.
for unit in systemd-firstboot.service getty@tty1.service serial-getty@ttyS0.service \
	console-getty.service containerd.service podman.service podman.socket \
	podman-auto-update.timer podman-auto-update.service podman-restart.service \
	podman-clean-transient.service apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
	systemd-timesyncd.service; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
# A machine id: without one systemd treats every boot as the first.
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
echo >>"$root/etc/machine-id"
echo berth-vm >"$root/etc/hostname"
: >"$root/etc/fstab"
rm -rf "$root"/usr/share/{doc,man,info,locale} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
	"$root"/var/log/*.log "$root"/var/cache/debconf/*-old

# The image: the root plus 2 GiB free for containers, images and state,
# sparse on the host.
mb=$(du -sm "$root" | cut -f1)
truncate -s "$((mb + 2048))M" "$dir.partial/root.ext4"
mke2fs -q -t ext4 -L berth-vm-root -d "$root" "$dir.partial/root.ext4" ||
	fail "mke2fs -d $root failed"
rm -rf "$root"
touch "$dir.partial/.complete"
rm -rf "$dir"
mv "$dir.partial" "$dir"
# Images of older recipes are no longer used.
find "$cache" -mindepth 1 -maxdepth 1 -name 'systemd-root-*' ! -path "$dir" ! -name '*.partial' -exec rm -rf {} +
echo "$dir/root.ext4"
