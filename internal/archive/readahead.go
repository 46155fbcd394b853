package archive

import (
	"io"
	"sync"
)

const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
)

type chunk struct {
	data []byte
	err  error
}

// readAhead runs a decompressor on its own goroutine, up to
// readAheadChunks*readAheadChunk bytes ahead of the consumer, so inflating
// the next bytes overlaps with writing the last ones to disk. The producer
// goroutine owns src: it alone reads it and calls closeSrc when it stops, so
// Close never races a Read that is blocked on the network.
type readAhead struct {
	filled chan chunk
	free   chan []byte
	done   chan struct{}
	once   sync.Once

	// cur and err are the consumer's; only Read touches them.
	cur []byte
	buf []byte
	err error
}

func newReadAhead(src io.Reader, closeSrc func() error) *readAhead {
	ra := &readAhead{
		filled: make(chan chunk, readAheadChunks),
		free:   make(chan []byte, readAheadChunks),
		done:   make(chan struct{}),
	}
	for range readAheadChunks {
		ra.free <- make([]byte, readAheadChunk)
	}
	go ra.produce(src, closeSrc)
	return ra
}

func (ra *readAhead) produce(src io.Reader, closeSrc func() error) {
	defer close(ra.filled)
	defer closeSrc() //nolint:errcheck // gzip's Close only reports earlier read errors, which the consumer already got
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := fill(src, buf)
		select {
		case ra.filled <- chunk{buf[:n], err}:
		case <-ra.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// fill reads until buf is full or src fails, keeping src's own error (a
// truncated stream must stay io.ErrUnexpectedEOF, not become io.EOF).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		c, ok := <-ra.filled
		if !ok {
			ra.err = io.ErrClosedPipe
			return 0, ra.err
		}
		ra.buf, ra.cur, ra.err = c.data, c.data, c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the producer; it does not wait for a Read blocked in the
// source (closing the source, e.g. an HTTP body, unblocks it).
func (ra *readAhead) Close() error {
	ra.once.Do(func() { close(ra.done) })
	return nil
}
