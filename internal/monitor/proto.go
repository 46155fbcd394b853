package monitor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire protocol on StateDir/attach.sock.
//
// The client sends one JSON request line. For every op but "attach" the
// monitor answers with one JSON reply line and closes the connection. For
// "attach" it answers with a reply line, then both sides exchange frames:
//
//	[type byte][uint32 big-endian length][payload]
//
// client to monitor: frameStdin, frameStdinClose, frameResize (rows, cols
// as two uint16); monitor to client: frameStdout, frameStderr, frameExit
// (the exit code as an int32), after which the monitor closes.

// Ops of a request.
const (
	opAttach    = "attach"
	opStart     = "start"
	opStopping  = "stopping"
	opWait      = "wait"
	opReopenLog = "reopen-log"
	opStatus    = "status"
)

type request struct {
	Op string `json:"op"`
}

type reply struct {
	Status   *Status `json:"status,omitempty"`
	Terminal bool    `json:"terminal,omitempty"`
	Error    string  `json:"error,omitempty"`
}

// Frame types.
const (
	frameStdin      byte = 1
	frameStdout     byte = 2
	frameStderr     byte = 3
	frameResize     byte = 4
	frameStdinClose byte = 5
	frameExit       byte = 6
)

// maxFrame bounds a frame's payload, so a broken peer cannot make the other
// side allocate without limit.
const maxFrame = 64 * 1024

// maxLine bounds a request or reply line.
const maxLine = 64 * 1024

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	// One write, so concurrent writers never interleave a frame's parts.
	buf := make([]byte, 0, 5+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach frame of %d bytes exceeds %d", n, maxFrame)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("read attach frame: %w", err)
	}
	return hdr[0], p, nil
}

// readLine reads one line of at most maxLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// writeLine writes data and a newline in one write.
func writeLine(w io.Writer, data []byte) error {
	_, err := w.Write(append(data, '\n'))
	return err
}
