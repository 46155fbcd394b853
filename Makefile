# Berth build and test entry points. See README.md.
GO      ?= go
BIN     := bin
# berth-runtime is the one cgo binary (libseccomp); link it statically so the
# per-container start pays no dynamic loader and the binary runs in any rootfs.
# urfave_cli_no_template: urfave/cli renders help without text/template, whose
# reflect.MethodByName makes the linker keep every exported method: 1.25 MB
# less text and rodata, create's peak RSS 7.9 -> 7.2 MiB, the same help text.
RT_TAGS := -tags netgo,osusergo,urfave_cli_no_template -trimpath
RT_LDFLAGS := -s -w -linkmode external -extldflags -static
# berth-runtime-init is the container init as a binary of its own (see
# internal/runtime/initbin_linux.go): berth-runtime runs it only when its GNU
# build ID, which the linker computes from the file, is the one given here.
RT_INIT_ID = $$(LC_ALL=C readelf -n $(BIN)/berth-runtime-init | awk '/Build ID:/ { print $$3 }')
DEMO    := $(CURDIR)/.tmp/demo
BERTH_DEMO = $(CURDIR)/$(BIN)/berth --root $(DEMO)/berth --runroot /run/berth-demo
# berth-runtime is a short-lived process started four times per container.
# Go 1.26's default (Green Tea) GC keeps mark bits at the end of each span,
# so every fresh span touches one page more: about 40-60 more page faults
# per process, ~2 ms per container on a VM where a fault costs 12 us. The
# opt-out is temporary in Go; where a toolchain no longer knows it, the
# default is used.
RT_GOEXP := $(shell GOEXPERIMENT=nogreenteagc $(GO) env GOEXPERIMENT >/dev/null 2>&1 && echo nogreenteagc)

.PHONY: all build test unit e2e demo bench conformance clean deps critest

all: build

# The linker writes its output through a shared mapping, which leaves the
# file in the page cache as large folios; the kernel (6.18 here) maps a
# whole cached folio on a fault, so every process of a freshly linked
# berth-runtime maps ~2 MB more of the binary than it touches (create's
# RSS 9.7-10.0 MiB against 9.0-9.4 for a copy). A copy made with write(2),
# as an install does, is cached as small folios, like a binary read back
# from disk: bin/ holds that copy. It is renamed into place (a new inode),
# so a container whose init runs from the old binary is not disturbed.
build:
	CGO_ENABLED=1 GOEXPERIMENT=$(RT_GOEXP) $(GO) build $(RT_TAGS) -ldflags '$(RT_LDFLAGS)' -o $(BIN)/.berth-runtime-init.link ./cmd/berth-runtime-init
	cp $(BIN)/.berth-runtime-init.link $(BIN)/.berth-runtime-init.copy && mv $(BIN)/.berth-runtime-init.copy $(BIN)/berth-runtime-init && rm $(BIN)/.berth-runtime-init.link
	id=$(RT_INIT_ID) && { test -n "$$id" || { echo "no GNU build ID in $(BIN)/berth-runtime-init (readelf -n, from binutils, reads it)" >&2; exit 1; }; } && \
	CGO_ENABLED=1 GOEXPERIMENT=$(RT_GOEXP) $(GO) build $(RT_TAGS) -ldflags "$(RT_LDFLAGS) -X github.com/berth-project/berth/internal/runtime.initBuildID=$$id" -o $(BIN)/.berth-runtime.link ./cmd/berth-runtime
	cp $(BIN)/.berth-runtime.link $(BIN)/.berth-runtime.copy && mv $(BIN)/.berth-runtime.copy $(BIN)/berth-runtime && rm $(BIN)/.berth-runtime.link
	$(GO) build -o $(BIN)/berth ./cmd/berth
	$(GO) build -o $(BIN)/berthd ./cmd/berthd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/berth-monitor ./cmd/berth-monitor
	$(CC) -static -Os -s -Wall -o $(BIN)/berth-pause cmd/berth-pause/pause.c
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/berth-secmon ./cmd/berth-secmon

# deps installs what a fresh Debian machine needs to build and test (as root).
deps:
	bash .ci/install-deps

# test runs every test: unit tests, then root-only integration tests that run
# real containers with the freshly built binaries.
test: build
	$(GO) vet ./...
	@# -p 1: the root tests of internal/network and test/e2e check the host
	@# for interfaces and firewall rules left behind; run side by side, each
	@# would see the other's.
	BERTH_RUNTIME=$(CURDIR)/$(BIN)/berth-runtime $(GO) test -p 1 -count=1 -timeout 30m ./...
	@# The short run of critest (37 specs, about 1.5 min once critest is
	@# built; the first build takes a few minutes) against bin/berthd.
	$(GO) test -tags critest -count=1 -timeout 30m ./test/critest/

demo: deps build
	rm -rf $(DEMO) && mkdir -p $(DEMO)/rootfs/bin
	cp /bin/busybox $(DEMO)/rootfs/bin/busybox
	for t in sh echo cat ls hostname id ps uname; do ln -sf busybox $(DEMO)/rootfs/bin/$$t; done
	cd $(DEMO) && $(CURDIR)/$(BIN)/berth-runtime spec
	sed -i 's/"terminal": true/"terminal": false/; s/"sh"$$/"sh", "-c", "echo hello from a berth container; hostname; id; ps"/' $(DEMO)/config.json
	$(CURDIR)/$(BIN)/berth-runtime --root $(DEMO)/state run --bundle $(DEMO) demo-$$$$
	@# The same busybox as an image, run by the engine: a web server on a
	@# published port, fetched from the host, then removed.
	for t in httpd wget sleep; do ln -sf busybox $(DEMO)/rootfs/bin/$$t; done
	mkdir -p $(DEMO)/rootfs/www && echo 'hello from a berth container' > $(DEMO)/rootfs/www/index.html
	tar -C $(DEMO)/rootfs -cf $(DEMO)/rootfs.tar .
	$(BERTH_DEMO) import $(DEMO)/rootfs.tar localhost/demo:latest
	$(BERTH_DEMO) run --rm --network none localhost/demo echo hello from berth run
	$(BERTH_DEMO) run -d --name demo-web -p 127.0.0.1:18080:80 localhost/demo httpd -f -p 80 -h /www
	$(BERTH_DEMO) ps
	sleep 1; busybox wget -qO- http://127.0.0.1:18080/ ; $(BERTH_DEMO) rm -f demo-web

bench: build
	$(GO) run ./bench/lifecycle -berth $(CURDIR)/$(BIN)/berth-runtime

# conformance runs the OCI runtime-tools validation suite against
# bin/berth-runtime and beside runc, and prints a table (as root; needs the Go
# module proxy once, then runs offline). See bench/conformance/README.md.
# Not part of test.
conformance: build
	bash bench/conformance/run.sh $(CURDIR)/$(BIN)/berth-runtime

clean:
	rm -rf $(BIN) .tmp

# critest runs the short run of the CRI validation suite (cri-tools v1.37.0)
# against bin/berthd; off `make test` for now. See test/critest/README.md.
critest: build
	$(GO) test -tags critest -count=1 -v -timeout 30m ./test/critest/
