// Package fscopy implements `berth cp`: copying between the host and a
// container's root filesystem, both ways, with Docker's rules for where the
// source lands (a trailing "/." copies a directory's contents, an existing
// directory destination receives the source inside it, "-" is a tar stream).
//
// Invariants:
//   - Every path inside a rootfs is resolved inside it (internal/pathrs:
//     openat2 RESOLVE_IN_ROOT), so a symlink in the container, absolute or
//     relative, in the middle of a path or as its last component, can only
//     lead somewhere else inside the container, never to the host.
//   - The tree being copied is walked through file descriptors: each entry is
//     opened O_PATH|O_NOFOLLOW relative to its parent's fd and read through
//     that same inode, so a container that swaps a directory for a symlink
//     while the copy runs (the CVE-2018-15664 race) gains nothing.
//   - Everything is written through a tar stream and one extractor that
//     creates each entry relative to a parent fd resolved inside the
//     destination root, the last component with O_EXCL/O_NOFOLLOW. A tar
//     stream from the user ("-") is held to the same rules: an absolute
//     name or a ".." component fails the copy (errdefs.ErrInvalidArgument).
//
// The layer extractor in internal/archive is not reused: it turns ".wh."
// files into overlayfs whiteouts and resolves without following any
// symlink, both wrong for copying into a running container, where a
// file may be called .wh.x and /lib may be a symlink to /usr/lib.
package fscopy
