package logs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults of WriterOptions.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 1
)

// Writer appends records to a log file and rotates it by size. It is safe
// for concurrent use: the stdout and stderr copiers share one Writer.
//
// Write is stateless across calls: each chunk read from the container
// becomes records at once, its unterminated tail a P record. So nothing
// waits in memory for a newline that may never come, and a monitor killed
// mid-line has lost nothing it read (conmon does the same).
type Writer struct {
	path     string
	maxSize  int64
	maxFiles int
	now      func() time.Time

	mu   sync.Mutex // guards the fields below
	f    *os.File
	size int64
	buf  []byte
}

// NewWriter opens (creating, mode 0600) the log at path for appending.
// maxSize is the size at which the file is rotated (0: DefaultMaxSize);
// maxFiles the number of rotated files kept (0: DefaultMaxFiles).
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = DefaultMaxFiles
	}
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	// O_NOFOLLOW: the log's own name must not be a symlink planted to make
	// the monitor append somewhere else.
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open container log %s: %w", w.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat container log %s: %w", w.path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("open container log %s: not a regular file", w.path)
	}
	w.f, w.size = f, fi.Size()
	return nil
}

// Write turns chunk, output read from the container's stream, into records:
// one F record per newline-terminated line, a P record for the rest and for
// every MaxLineSize piece of a longer line.
func (w *Writer) Write(stream string, chunk []byte) error {
	if len(chunk) == 0 {
		return nil
	}
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write container log %s: closed", w.path)
	}
	buf := w.buf[:0]
	for len(chunk) > 0 {
		line := chunk
		partial := true
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			line, partial = chunk[:i], false
		}
		if len(line) > MaxLineSize {
			line, partial = line[:MaxLineSize], true
		}
		buf = appendRecord(buf, now, stream, partial, line)
		chunk = chunk[len(line):]
		if !partial {
			chunk = chunk[1:] // the newline
		}
	}
	w.buf = buf
	if w.size > 0 && w.size+int64(len(buf)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	if cap(w.buf) > 4*MaxLineSize {
		w.buf = nil // do not keep a burst's buffer for the container's lifetime
	}
	if err != nil {
		return fmt.Errorf("write container log %s: %w", w.path, err)
	}
	return nil
}

// rotate renames LOG.N-1 to LOG.N ... LOG to LOG.1 and opens a new LOG.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close container log %s for rotation: %w", w.path, err)
	}
	w.f = nil
	for i := w.maxFiles - 1; i >= 1; i-- {
		from, to := w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1)
		if err := os.Rename(from, to); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate container log %s to %s: %w", from, to, err)
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotate container log %s: %w", w.path, err)
	}
	return w.open()
}

// Reopen closes the log file and opens path again, creating it: after
// something else (the CRI's ReopenContainerLog, logrotate) moved it away.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	return w.open()
}

// Close closes the log file. Later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
