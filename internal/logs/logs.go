// Package logs writes and reads container logs in the CRI format kubelet
// reads, one record a line:
//
//	2016-10-06T00:17:09.669794202Z stdout F log content
//
// The timestamp is RFC 3339 with nanoseconds in UTC, the stream is "stdout"
// or "stderr", and the tag is F for a full line or P for a partial one: a
// piece of a line cut at the read buffer's size, or output that had no
// newline yet when it was read. A message is the concatenation of its P
// records and the F record that ends it. The content never holds a newline,
// so a container cannot forge records whatever it prints.
//
// The Writer rotates by size (LOG, LOG.1 ... LOG.N, LOG.1 the newest rotated
// file) and can reopen its file for the CRI's ReopenContainerLog. Read
// serves `berth logs`: it reassembles partial lines, reads rotated files for
// --tail and follows across rotation.
//
// This package imports only the standard library: the per-container monitor
// links it, and its size is paid once per container.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Streams a record can belong to.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// MaxLineSize is the longest content of one record; longer lines are split
// into P records. kubelet and containerd use 16 KiB too.
const MaxLineSize = 16 * 1024

// Entry is one parsed record.
type Entry struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content []byte // without the newline; aliases the parsed line
}

// errMalformed is wrapped by every ParseLine error.
var errMalformed = errors.New("malformed CRI log line")

// ParseLine parses one record, without its trailing newline. Content aliases
// line.
func ParseLine(line []byte) (Entry, error) {
	var e Entry
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return e, fmt.Errorf("%w: no space after the timestamp in %.40q", errMalformed, line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return e, fmt.Errorf("%w: timestamp %.40q: %v", errMalformed, ts, err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return e, fmt.Errorf("%w: no space after the stream in %.40q", errMalformed, line)
	}
	switch string(stream) {
	case Stdout:
		e.Stream = Stdout
	case Stderr:
		e.Stream = Stderr
	default:
		return e, fmt.Errorf("%w: stream %.20q is neither stdout nor stderr", errMalformed, stream)
	}
	// The tag may be followed by a space and content, or end the line (an
	// empty full line).
	tag, content, _ := bytes.Cut(rest, []byte{' '})
	switch string(tag) {
	case "F":
	case "P":
		e.Partial = true
	default:
		return e, fmt.Errorf("%w: tag %.20q is neither F nor P", errMalformed, tag)
	}
	e.Time = t
	e.Content = content
	return e, nil
}

// appendRecord appends one record to buf.
func appendRecord(buf []byte, t time.Time, stream string, partial bool, content []byte) []byte {
	buf = t.UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	if partial {
		buf = append(buf, " P "...)
	} else {
		buf = append(buf, " F "...)
	}
	buf = append(buf, content...)
	return append(buf, '\n')
}
