package fscopy

import (
	"fmt"
	"path"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
)

// copyPath is a source or destination path as the user wrote it, with the
// trailing-separator information Docker's rules depend on.
type copyPath struct {
	clean    string // path.Clean'd, absolute
	sep      bool   // ended in "/" or "/.": must be a directory
	contents bool   // ended in "/.": a directory's contents, not itself
}

// maxPathLen bounds a path from the command line; PATH_MAX is 4096.
const maxPathLen = 4096

// parseCopyPath reads a path given to cp. Paths inside a container are
// taken relative to its root, so "etc" is "/etc"; on the host the caller
// makes the path absolute first.
func parseCopyPath(p string) (copyPath, error) {
	if p == "" {
		return copyPath{}, fmt.Errorf("empty path: %w", errdefs.ErrInvalidArgument)
	}
	if len(p) > maxPathLen {
		return copyPath{}, fmt.Errorf("path %.40q...: longer than %d bytes: %w", p, maxPathLen, errdefs.ErrInvalidArgument)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return copyPath{}, fmt.Errorf("path %q contains a NUL byte: %w", p, errdefs.ErrInvalidArgument)
	}
	c := copyPath{clean: path.Clean("/" + p)}
	c.contents = p == "." || strings.HasSuffix(p, "/.")
	c.sep = c.contents || strings.HasSuffix(p, "/")
	if c.clean == "/" {
		// The root has no name of its own to land under: copying it is
		// copying its contents.
		c.contents, c.sep = true, true
	}
	return c, nil
}

// target is where a copy lands: the source's tree is extracted into dir,
// its top entry named name, or, with contents, its children placed
// directly in dir.
type target struct {
	dir      string
	name     string
	contents bool
}

// decide applies Docker's cp rules (docker/cli cp.go, moby archive.go
// CopyInfoDestinationPath) once both ends have been looked at:
//   - a source ending in "/" or "/." must be a directory;
//   - an existing directory destination receives the source inside it,
//     or only its contents for "src/.";
//   - an existing file destination is overwritten by a file, and a
//     directory cannot be copied onto it;
//   - a destination that does not exist becomes the source under the new
//     name, but its parent must exist, and a file cannot be copied to
//     "missing/" because that names a directory.
func decide(src copyPath, srcIsDir bool, dst copyPath, dstExists, dstIsDir bool) (target, error) {
	if src.sep && !srcIsDir {
		return target{}, fmt.Errorf("source %s ends in a separator but is not a directory: %w", src.clean, errdefs.ErrInvalidArgument)
	}
	parent, base := path.Split(dst.clean)
	parent = path.Clean(parent)
	switch {
	case dstExists && dstIsDir:
		if src.contents {
			return target{dir: dst.clean, contents: true}, nil
		}
		return target{dir: dst.clean, name: path.Base(src.clean)}, nil
	case dstExists:
		if dst.sep {
			return target{}, fmt.Errorf("destination %s is not a directory: %w", dst.clean, errdefs.ErrInvalidArgument)
		}
		if srcIsDir {
			return target{}, fmt.Errorf("cannot copy directory %s onto file %s: %w", src.clean, dst.clean, errdefs.ErrInvalidArgument)
		}
		return target{dir: parent, name: base}, nil
	default:
		if base == "" {
			return target{}, fmt.Errorf("destination %s does not exist: %w", dst.clean, errdefs.ErrNotFound)
		}
		if dst.sep && !srcIsDir {
			return target{}, fmt.Errorf("destination directory %s does not exist: %w", dst.clean, errdefs.ErrNotFound)
		}
		return target{dir: parent, name: base}, nil
	}
}
