#!/bin/bash
# build.sh: CRI-O (crio and its namespace pinner, pinns) for
# test/e2e/crio_test.go, which skips without them. CRI-O is not packaged in
# Debian 12; this builds it from the Go module proxy into
# ${BERTH_CACHE:-~/.cache/berth}/crio, never into the repository. A second
# run reuses what is there.
#
# `go install github.com/cri-o/cri-o/cmd/crio@VERSION` is refused here (the
# proxy answers 403 to the module's version list, which go install reads
# for deprecations), so a scratch module requires the version and builds
# the command from it. Tags: no gpgme (containers_image_openpgp), no btrfs
# or devicemapper headers, seccomp (libseccomp-dev). pinns is C, in the
# module's pinns/ directory.
set -euo pipefail
version=${CRIO_VERSION:-v1.34.0}
out=${BERTH_CACHE:-$HOME/.cache/berth}/crio
mkdir -p "$out"
if [ -x "$out/crio" ] && [ -x "$out/pinns" ]; then
	echo "$out/crio and $out/pinns exist"
	exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
go mod init crio-build >/dev/null 2>&1
go get "github.com/cri-o/cri-o@$version"
go build -mod=mod -tags "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp" \
	-o "$out/crio.tmp" github.com/cri-o/cri-o/cmd/crio
mv "$out/crio.tmp" "$out/crio"
src=$(go list -m -f '{{.Dir}}' "github.com/cri-o/cri-o")
cc -std=c99 -Os -Wall -static -o "$out/pinns" "$src"/pinns/src/*.c
echo "built $out/crio ($version) and $out/pinns"
