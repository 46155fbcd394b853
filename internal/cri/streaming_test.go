package cri

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-project/berth/internal/engine"
)

func TestStreamingRPCsBeforeStart(t *testing.T) {
	s := &Server{}
	ctx := context.Background()
	_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "x", Cmd: []string{"true"}, Stdout: true})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Exec before StartStreaming: %v, want Unavailable", err)
	}
	_, err = s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "x", Stdout: true})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Attach before StartStreaming: %v, want Unavailable", err)
	}
	_, err = s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "x", Port: []int32{80}})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("PortForward before StartStreaming: %v, want Unavailable", err)
	}
	if err := s.StopStreaming(); err != nil {
		t.Errorf("StopStreaming of a server never started: %v", err)
	}
}

func TestExitError(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := exitError(0, nil, &errOut, &out, false); err != nil {
		t.Errorf("code 0: %v", err)
	}
	err := exitError(3, nil, &errOut, &out, false)
	var xe utilexec.ExitError
	if !errors.As(err, &xe) || !xe.Exited() || xe.ExitStatus() != 3 {
		t.Errorf("code 3: %#v, want a utilexec.ExitError with status 3", err)
	}
	err = exitError(0, &engine.ExitError{Code: 127, Err: errors.New(`exec: "nope": executable file not found`)}, &errOut, &out, false)
	if !errors.As(err, &xe) || xe.ExitStatus() != 127 || !strings.Contains(errOut.String(), `"nope"`) || out.Len() != 0 {
		t.Errorf("not found: %v, stderr %q, stdout %q", err, errOut.String(), out.String())
	}
	out.Reset()
	exitError(0, &engine.ExitError{Code: 126, Err: errors.New("not executable")}, io.Discard, &out, false)
	if !strings.Contains(out.String(), "not executable") {
		t.Errorf("without stderr the message goes to stdout: %q", out.String())
	}
	if err := exitError(0, errors.New("boom"), &errOut, &out, false); err == nil || err.Error() != "boom" {
		t.Errorf("other errors pass: %v", err)
	}
}

func TestEngineStreamsResize(t *testing.T) {
	resize := make(chan remotecommand.TerminalSize)
	s, done, err := engineStreams(nil, nil, nil, resize)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stdin != nil || s.Stdout != io.Discard || s.Stderr != io.Discard {
		t.Errorf("absent streams: %+v", s)
	}
	resize <- remotecommand.TerminalSize{Width: 100, Height: 40}
	if got := <-s.Resize; got != (engine.TermSize{Rows: 40, Cols: 100}) {
		t.Errorf("resize %+v, want 40 rows 100 columns", got)
	}
	done()
	if _, ok := <-s.Resize; ok {
		t.Error("the resize relay goes on after done")
	}
}

func TestCappedOutput(t *testing.T) {
	o := &cappedOutput{left: 10}
	out, errw := o.writer(&o.stdout), o.writer(&o.stderr)
	var wg sync.WaitGroup
	for _, w := range []io.Writer{out, errw} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if n, err := w.Write([]byte("abc")); n != 3 || err != nil {
					t.Errorf("write: %d %v", n, err)
				}
			}
		}()
	}
	wg.Wait()
	stdout, stderr := o.result()
	note := bytes.Index(stderr, []byte("\n[berthd: output truncated"))
	if note < 0 || len(stdout)+note != 10 {
		t.Errorf("kept %q and %q, want 10 bytes in all", stdout, stderr)
	}
	if !strings.Contains(string(stderr), "truncated: 14 bytes beyond") {
		t.Errorf("stderr %q does not say what was dropped", stderr)
	}
}
