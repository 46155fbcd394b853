// Package e2e holds root-only end-to-end tests that drive an OCI runtime
// binary with runc's command line, as containerd and Podman do. The binary
// is $BERTH_RUNTIME (`make test` sets it to the freshly built berth-runtime);
// the tests pass against any runc-compatible runtime, and are kept honest by
// running them against Debian's runc too:
//
//	BERTH_RUNTIME=/usr/sbin/runc go test ./test/e2e/...
//
// Where runc 1.1.5 itself deviates from the runtime-spec, the test says so
// and skips when the binary is runc (see skipIfRunc).
package e2e
