// Package testutil holds helpers for Berth's tests: checks that name the host
// feature a test needs (RequiresRoot, RequiresBinary), a builder for OCI
// bundles whose rootfs is Debian's busybox-static (NewBundle, DefaultSpec), a
// driver for any runtime binary with runc's command line (Runtime), and the
// checks that a container left nothing behind (CheckNoLeaks).
//
// Invariants: everything a helper creates on the host (bundles, state roots,
// container ids, cgroups) has "berth" in its name, and is removed through
// t.Cleanup on every path, including a failed test.
package testutil
