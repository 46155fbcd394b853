package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The container's init (package initproc) runs from berth-runtime-init, a
// binary of its own beside berth-runtime, when there is one from the same
// build: a Go program without the CLI, the cgroup library, D-Bus or
// libseccomp starts ~4 ms sooner than berth-runtime does, and every create
// and exec waits for that start. Otherwise the init runs from
// berth-runtime itself (`berth-runtime init`), which holds the same code:
// berth-runtime alone stays a complete runtime.
//
// initBuildID is the GNU build ID (a hash of the linked file, written by
// the linker) of the berth-runtime-init that was built with this binary;
// the Makefile sets it with -X. An init binary from another build may
// speak another protocol to the runtime, so one whose ID differs is not
// used; nor is any when initBuildID is empty, as in a plain `go build`.
var initBuildID string

// initBinaryName is the init binary's name, in berth-runtime's directory.
const initBinaryName = "berth-runtime-init"

// sealedInit opens the binary the init runs from through a detached,
// read-only bind mount: berth-runtime-init when it is there and from
// this build, else the runtime's own binary. Even a container process that
// gets hold of /proc/PID/exe of a runtime process then cannot write the
// host's binary (CVE-2019-5736): the mount is read-only and reachable from
// nowhere else.
func sealedInit() (*os.File, error) {
	if initBuildID != "" {
		if fd, ok := openInitBinary(); ok {
			defer unix.Close(fd)
			return sealBinary(fd, "", initBinaryName)
		}
	}
	return sealBinary(unix.AT_FDCWD, "/proc/self/exe", "berth-runtime")
}

// openInitBinary opens berth-runtime-init beside the runtime's binary if
// its build ID is initBuildID.
func openInitBinary() (int, bool) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil || !filepath.IsAbs(self) {
		return -1, false
	}
	fd, err := unix.Open(filepath.Join(filepath.Dir(self), initBinaryName), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, false
	}
	id, err := gnuBuildID(fdReader(fd))
	if err != nil || id != initBuildID {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// fdReader reads a file descriptor with pread, leaving it open (an
// os.File would close it when collected).
type fdReader int

func (fd fdReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := unix.Pread(int(fd), p, off)
	if err == nil && n < len(p) {
		err = io.ErrUnexpectedEOF
	}
	return max(n, 0), err
}

// sealBinary clones the file at dirfd/path (the file dirfd is itself when
// path is empty) into a detached, read-only mount and returns it open.
func sealBinary(dirfd int, path, name string) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := unix.OpenTree(dirfd, path, flags)
	if errors.Is(err, unix.EPERM) {
		// A rootless runtime may not clone mounts: run from a sealed
		// in-memory copy instead, which no one can write either.
		return sealedCopy(dirfd, path, name)
	}
	if err != nil {
		return nil, fmt.Errorf("clone the binary %s: %w", name, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make the binary %s read-only: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// sealedCopy copies the binary into a memfd sealed against every change,
// runc's defence for callers without mount privileges.
func sealedCopy(dirfd int, path, name string) (*os.File, error) {
	if path == "" {
		path = fmt.Sprintf("/proc/self/fd/%d", dirfd)
	}
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("copy the binary %s: %w", name, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copy the binary %s: memfd: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy the binary %s: %w", name, err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the copy of the binary %s: %w", name, err)
	}
	return f, nil
}

// gnuBuildID reads the NT_GNU_BUILD_ID note of a 64-bit ELF file, found
// through its program headers (a few hundred bytes at the start of the
// file), as hex.
func gnuBuildID(r io.ReaderAt) (string, error) {
	var eh [64]byte
	if _, err := r.ReadAt(eh[:], 0); err != nil {
		return "", fmt.Errorf("ELF header: %w", err)
	}
	if string(eh[:4]) != "\x7fELF" || eh[4] != 2 { // ELFCLASS64
		return "", errors.New("not a 64-bit ELF file")
	}
	var bo binary.ByteOrder
	switch eh[5] {
	case 1:
		bo = binary.LittleEndian
	case 2:
		bo = binary.BigEndian
	default:
		return "", errors.New("ELF header: unknown byte order")
	}
	phoff := bo.Uint64(eh[32:])
	phentsize := uint64(bo.Uint16(eh[54:]))
	phnum := uint64(bo.Uint16(eh[56:]))
	if phentsize < 56 || phentsize > 256 || phnum > 64 || phoff > 1<<20 {
		return "", errors.New("ELF header: implausible program headers")
	}
	phdrs := make([]byte, phnum*phentsize)
	if _, err := r.ReadAt(phdrs, int64(phoff)); err != nil {
		return "", fmt.Errorf("ELF program headers: %w", err)
	}
	for i := uint64(0); i < phnum; i++ {
		ph := phdrs[i*phentsize:]
		if bo.Uint32(ph[0:]) != 4 { // PT_NOTE
			continue
		}
		off, size := bo.Uint64(ph[8:]), bo.Uint64(ph[32:])
		if size > 4096 || off > 1<<30 {
			continue
		}
		notes := make([]byte, size)
		if _, err := r.ReadAt(notes, int64(off)); err != nil {
			return "", fmt.Errorf("ELF notes: %w", err)
		}
		if id, ok := findBuildID(notes, bo); ok {
			return id, nil
		}
	}
	return "", errors.New("no GNU build ID note")
}

// findBuildID walks the notes of one PT_NOTE segment: each is namesz,
// descsz, type, then the name and the descriptor, each padded to 4 bytes.
func findBuildID(notes []byte, bo binary.ByteOrder) (string, bool) {
	pad := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for len(notes) >= 12 {
		namesz, descsz, typ := uint64(bo.Uint32(notes)), uint64(bo.Uint32(notes[4:])), bo.Uint32(notes[8:])
		rest := notes[12:]
		if pad(namesz) > uint64(len(rest)) || pad(namesz)+pad(descsz) > uint64(len(rest)) {
			return "", false
		}
		name, desc := rest[:namesz], rest[pad(namesz):pad(namesz)+descsz]
		if typ == 3 && string(name) == "GNU\x00" && len(desc) > 0 { // NT_GNU_BUILD_ID
			return fmt.Sprintf("%x", desc), true
		}
		notes = rest[pad(namesz)+pad(descsz):]
	}
	return "", false
}
