package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// ReadOptions select what Read prints, with `docker logs` / `podman logs`
// semantics.
type ReadOptions struct {
	// Follow keeps reading what is appended, across rotation, until ctx
	// ends or Done reports true.
	Follow bool
	// Tail is the number of messages to print from the end of the log (the
	// rotated files included); -1 prints all, 0 none (with Follow: only
	// what comes next).
	Tail int
	// Since and Until, when not zero, keep only messages whose first record
	// was written at or after Since, and at or before Until.
	Since, Until time.Time
	// Timestamps prefixes each message with its RFC 3339 time and a space.
	Timestamps bool
	// Stdout and Stderr receive the container's streams; a nil writer
	// drops its stream.
	Stdout, Stderr io.Writer
	// Done, with Follow, is polled while waiting for more: once it reports
	// true (the container has exited and its monitor is gone) Read drains
	// what is left and returns.
	Done func() bool
	// PollInterval is how often a follower looks for new records (0: 100ms).
	PollInterval time.Duration
}

// maxRecordSize bounds a record the reader accepts: a longer "line" was not
// written by Writer, and is skipped instead of growing a buffer without end.
const maxRecordSize = MaxLineSize + 256

// message is a reassembled log message: its P records and its F record.
type message struct {
	time    time.Time
	stream  string
	content []byte
	full    bool // ended by an F record; else the rest is still to come
}

// reader is the state of one Read.
type reader struct {
	opts ReadOptions
	// pending holds, per stream, the P records of a message whose F record
	// has not been read yet.
	pending map[string]*message
	// midLine is set for a stream whose last printed message had no end:
	// what follows continues it and gets no timestamp.
	midLine map[string]bool
	tail    []message // the last messages, when Tail >= 0 (history only)
	history bool      // reading what was there when Read began
	// skipping is set while the reader skips an overlong line.
	skipping bool
}

// Read prints the messages of the CRI log at path (and of its rotated files
// path.1 ... path.N, oldest first) to opts.Stdout and opts.Stderr.
// A log that does not exist yet is empty. Malformed lines are skipped.
func Read(ctx context.Context, path string, opts ReadOptions) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	r := &reader{opts: opts, pending: map[string]*message{}, midLine: map[string]bool{}, history: true}
	for _, p := range rotatedFiles(path) {
		if err := r.readFile(ctx, p); err != nil {
			return err
		}
	}
	cur, err := os.Open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("open container log %s: %w", path, err)
	}
	var br *bufio.Reader
	var partial []byte
	if cur != nil {
		defer func() { cur.Close() }()
		br = bufio.NewReaderSize(cur, 64*1024)
		if partial, err = r.drain(br, nil); err != nil {
			return err
		}
	}
	// The end of history: the unfinished messages count as the last ones
	// (a follower continues them), then the messages kept for --tail.
	for _, s := range []string{Stdout, Stderr} {
		if m := r.pending[s]; m != nil {
			delete(r.pending, s)
			if err := r.emit(*m); err != nil {
				return err
			}
		}
	}
	r.history = false
	r.trimTail()
	for _, m := range r.tail {
		if err := r.print(m); err != nil {
			return err
		}
	}
	r.tail = nil
	if !opts.Follow {
		return nil
	}
	for {
		done := opts.Done != nil && opts.Done()
		if cur != nil {
			if partial, err = r.drain(br, partial); err != nil {
				return err
			}
		}
		// Rotated (or created): the writer closed the old file before
		// renaming it, so the drain above read all of it.
		if next, err := os.Open(path); err == nil {
			if cur != nil && sameFile(cur, next) {
				next.Close()
			} else {
				if cur != nil {
					cur.Close()
				}
				cur, br, partial = next, bufio.NewReaderSize(next, 64*1024), nil
				continue
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.PollInterval):
		}
	}
}

// rotatedFiles returns path.N ... path.1 that exist, oldest first.
func rotatedFiles(path string) []string {
	var files []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Lstat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	return files
}

func sameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}

func (r *reader) readFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // rotated away meanwhile
		}
		return fmt.Errorf("open container log %s: %w", path, err)
	}
	defer f.Close()
	// A rotated file ends with a whole record; a torn last line is dropped.
	_, err = r.drain(bufio.NewReaderSize(f, 64*1024), nil)
	return err
}

// drain handles every complete line br has, and returns the bytes of an
// unterminated last line (to be completed by the next drain), starting from
// partial, the unterminated rest of the previous drain.
func (r *reader) drain(br *bufio.Reader, partial []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) && err != io.EOF {
			return partial, fmt.Errorf("read container log: %w", err)
		}
		if err != nil || r.skipping {
			ended := err == nil
			if !r.skipping {
				partial = append(partial, chunk...)
				if len(partial) > maxRecordSize {
					// Not written by Writer: skip to the end of this line
					// rather than grow a buffer without end.
					r.skipping, partial = true, partial[:0]
				}
			}
			if ended {
				r.skipping = false
			}
			if err == io.EOF {
				return partial, nil
			}
			continue
		}
		line := chunk[:len(chunk)-1]
		if len(partial) > 0 {
			partial = append(partial, line...)
			line, partial = partial, partial[:0]
		}
		if err := r.record(line); err != nil {
			return nil, err
		}
	}
}

// record handles one line of the log.
func (r *reader) record(line []byte) error {
	e, err := ParseLine(line)
	if err != nil {
		return nil // skipped: a torn write or a foreign line
	}
	if !r.history {
		// Following: print records as they come, so a prompt without a
		// newline shows at once.
		return r.emit(message{time: e.Time, stream: e.Stream, content: e.Content, full: !e.Partial})
	}
	m := r.pending[e.Stream]
	if m == nil {
		m = &message{time: e.Time, stream: e.Stream}
		r.pending[e.Stream] = m
	}
	m.content = append(m.content, e.Content...)
	if e.Partial && len(m.content) < 1<<20 {
		return nil
	}
	// An F record, or a message so long it is cut here to bound memory.
	m.full = !e.Partial
	delete(r.pending, e.Stream)
	return r.emit(*m)
}

// emit prints m, or keeps it for --tail while reading history.
func (r *reader) emit(m message) error {
	if !r.opts.Since.IsZero() && m.time.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && m.time.After(r.opts.Until) {
		return nil
	}
	if r.history && r.opts.Tail >= 0 {
		if r.opts.Tail == 0 {
			return nil
		}
		r.tail = append(r.tail, m)
		if len(r.tail) >= 2*r.opts.Tail+16 {
			r.tail = append(r.tail[:0], r.tail[len(r.tail)-r.opts.Tail:]...)
		}
		return nil
	}
	return r.print(m)
}

// trimTail keeps the last Tail messages.
func (r *reader) trimTail() {
	if r.opts.Tail >= 0 && len(r.tail) > r.opts.Tail {
		r.tail = r.tail[len(r.tail)-r.opts.Tail:]
	}
}

func (r *reader) print(m message) error {
	w := r.opts.Stdout
	if m.stream == Stderr {
		w = r.opts.Stderr
	}
	cont := r.midLine[m.stream]
	r.midLine[m.stream] = !m.full
	if w == nil {
		return nil
	}
	var b bytes.Buffer
	if r.opts.Timestamps && !cont {
		b.WriteString(m.time.UTC().Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.Write(m.content)
	if m.full {
		b.WriteByte('\n')
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write container log output: %w", err)
	}
	return nil
}
