#!/bin/sh
# build.sh builds kubelet (Kubernetes v1.37.2, the release matching
# k8s.io/cri-api v0.37.2 in go.mod) from the Go module proxy into a cache
# outside the repository, and prints the binary's path.
#
# `go install k8s.io/kubernetes/cmd/kubelet@v1.37.2` refuses the module:
# its go.mod replaces every k8s.io/X staging module with
# ./staging/src/k8s.io/X, and the module zip leaves those directories out
# (each has a go.mod of its own). So the source is copied to a scratch
# directory and each replace becomes a plain requirement of k8s.io/X at the
# matching v0.37.2 tag, which the proxy serves.
#
# Environment: KUBE_VERSION (default v1.37.2), BERTH_CACHE (default
# $HOME/.cache/berth), KUBELET_BUILD_DIR (scratch, default
# $BERTH_CACHE/kubelet/build). Needs go in PATH. Takes 10+ minutes of CPU.
set -eu

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
STAGING_VERSION=v0.${KUBE_VERSION#v1.}
CACHE=${BERTH_CACHE:-$HOME/.cache/berth}/kubelet
OUT=$CACHE/kubelet-$KUBE_VERSION
WORK=${KUBELET_BUILD_DIR:-$CACHE/build}

if [ -x "$OUT" ] && "$OUT" --version 2>/dev/null | grep -q "$KUBE_VERSION\$"; then
	echo "$OUT"
	exit 0
fi
mkdir -p "$CACHE"

SRC=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$SRC" ] || { echo "build.sh: go mod download gave no source dir for k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
cp -r "$SRC/." "$WORK/"
chmod -R u+w "$WORK"
cd "$WORK"
# go.work names the staging directories, which are not in the module zip.
rm -f go.work go.work.sum

for m in $(sed -n '/^replace (/,/^)/p' go.mod | awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}'); do
	go mod edit -dropreplace="$m"
	# Only modules the build requires get a version; the sample-* ones are not required.
	if grep -q "^[[:space:]]$m v0.0.0\$" go.mod; then
		go mod edit -require="$m@$STAGING_VERSION"
	fi
done

# Version stamps, as hack/lib/version.sh sets them, so `kubelet --version` is honest.
PKG=k8s.io/component-base/version
LDFLAGS="-s -w -X $PKG.gitVersion=$KUBE_VERSION -X $PKG.gitMajor=1 -X $PKG.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $PKG.gitTreeState=clean -X $PKG.buildDate=1970-01-01T00:00:00Z"
GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags "$LDFLAGS" -o "$OUT.tmp" ./cmd/kubelet
mv "$OUT.tmp" "$OUT"
echo "$OUT"
