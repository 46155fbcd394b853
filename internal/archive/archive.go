// Package archive unpacks OCI image layers: it undoes a layer's compression
// (Decompress) and extracts its tar stream into the upper directory of an
// overlayfs snapshot (Apply), in one streaming pass.
//
// Invariants of Apply:
//   - Nothing is written outside the target directory. Every entry name and
//     hard-link target is checked lexically (no absolute paths, no ".."), and
//     every directory an entry is created in is resolved inside the target
//     without following any symlink (openat2 RESOLVE_BENEATH |
//     RESOLVE_NO_SYMLINKS); missing parents are created with pathrs-lite's
//     MkdirAllHandle. The last component of an entry is always created with
//     O_EXCL/O_NOFOLLOW semantics, after removing whatever was there, so a
//     symlink placed by an earlier entry is replaced, never written through.
//   - A hostile entry fails the whole Apply with an error that names the entry
//     and wraps errdefs.ErrInvalidArgument. What was extracted before it is
//     left in dir: the caller discards the snapshot (it is an active snapshot
//     that is never committed).
//   - OCI whiteouts become overlayfs whiteouts: ".wh.NAME" a 0/0 character
//     device NAME, ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its
//     directory.
//   - Device nodes, setuid/setgid bits and security.capability are kept (the
//     caller runs as root, as containerd does; the container's device cgroup
//     decides what a node may open). Xattrs in trusted.overlay.* and
//     user.overlay.* fail the layer: they would let it forge overlayfs state.
//   - A hard link to a file that is not in the layer but in a layer below
//     (ApplyOptions.Parents) is made as overlayfs makes it in a container:
//     the file is copied up (content, owner, mode, xattrs, times) to its
//     own name in the upper directory, and linked there, so the merged
//     view shows one file under both names. The file is found as overlayfs
//     finds it, layer by layer, without following symlinks and stopping at
//     whiteouts and opaque directories; a link to nothing is hostile.
//
// Limits. Apply writes only the upper directory: a directory a layer
// implies without a header of its own (a whiteout in etc/ with no etc/
// entry) copies owner, mode and times from ApplyOptions.Parents but not
// xattrs, and is made 0755 root:root when no parent has it; and a layer
// entry under a path that is a symlink in a lower layer (lib/x when a
// lower layer has lib -> usr/lib) makes a real directory that shadows the
// symlink. Docker, BuildKit and containerd write layers that avoid both.
// Sparse files are written out in full. Needs Linux 5.6 (openat2).
package archive

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-project/berth/internal/errdefs"
)

// ApplyOptions tunes Apply. The zero value is what an image unpack wants:
// ownership, modes, xattrs and device nodes exactly as the layer says.
type ApplyOptions struct {
	// Parents are the directories of the layers below, nearest first (an
	// overlay's lowerdir list). A directory the layer implies without a
	// header of its own then takes owner, mode and times from the
	// nearest parent where it is visible, instead of 0755 root:root,
	// which would hide the real one in the merged view. Apply only reads
	// Parents.
	Parents []string
	// ParentsLater, set instead of Parents, lets Apply run before the
	// layers below are final: a pull extracts layer N+1 while layer N is
	// still being applied. An upper directory does not need what lies
	// below to receive its layer (whiteouts and opaque directories are
	// marks, not copies), so Apply reads the layers below only where it
	// must, and calls ParentsLater, at most once, to get them: it blocks
	// until they are final and returns what Parents would have been. Apply
	// calls it at a hard link to a file that is not in this layer (the
	// link waits for the file below, and the rest of the layer for the
	// link), or after the last entry when the layer implied directories
	// (they take owner, mode and times from below then, without
	// waiting before). The tree is the one Apply makes with Parents.
	ParentsLater func(ctx context.Context) ([]string, error)
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// Decompress detects gzip, zstd or an uncompressed tar stream by its magic
// bytes and returns a reader of the tar stream. Closing it releases the
// decompressor (zstd holds goroutines); it does not close r. xz and bzip2
// layers (allowed by Docker, not by OCI) are refused with
// errdefs.ErrNotImplemented.
//
// Decompression runs ahead of the reader in its own goroutine (a few MiB),
// so inflating overlaps with the writes that Apply does.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	return decompress(r, true)
}

// decompress is Decompress with the gzip read-ahead optional, so the
// benchmark can show what it buys.
func decompress(r io.Reader, readAheadGzip bool) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		if !readAheadGzip {
			return zr, nil
		}
		return newReadAhead(zr, zr.Close), nil
	case bytes.HasPrefix(head, magicZstd):
		// zstd's streaming decoder already decodes blocks ahead of the
		// reader on its own goroutines.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2))
		if err != nil {
			return nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(head, magicXz):
		return nil, fmt.Errorf("xz-compressed layer: %w", errdefs.ErrNotImplemented)
	case bytes.HasPrefix(head, magicBzip2):
		return nil, fmt.Errorf("bzip2-compressed layer: %w", errdefs.ErrNotImplemented)
	default:
		return io.NopCloser(br), nil
	}
}
