package secmon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// maxAlertLine bounds one line of the alerts log when reading it.
const maxAlertLine = 1 << 20

// ReadAlerts calls fn with each line of the alerts log at path (one JSON
// Alert), and with follow, waits for more until ctx ends. A missing log
// is an empty one.
func ReadAlerts(ctx context.Context, path string, follow bool, fn func(line []byte) error) error {
	var f *os.File
	for f == nil {
		var err error
		f, err = os.Open(path)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !follow {
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil
		}
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var partial []byte
	for {
		line, err := r.ReadSlice('\n')
		if len(partial)+len(line) > maxAlertLine {
			partial, line = nil, nil // a corrupt, endless line: skip it
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			partial = append(partial, line...)
			continue
		}
		if err == nil {
			full := append(partial, line[:len(line)-1]...)
			partial = nil
			if len(full) > 0 {
				if err := fn(full); err != nil {
					return err
				}
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial = append(partial, line...)
		if !follow {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
