package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/image"
)

// progress shows a pull: one bar per layer on a terminal, a line per
// change of a layer's state otherwise, nothing with -q.
type progress struct {
	out    io.Writer
	quiet  bool
	bars   *mpb.Progress
	bar    map[digest.Digest]*layerBar
	status map[digest.Digest]image.Status
}

// layerBar is one layer's bar; status is read by mpb's render goroutine.
type layerBar struct {
	*mpb.Bar
	status atomic.Value // string
}

// isTerminal reports whether f is a terminal bars can be drawn on (a pty
// with no size, as under script(1) without a terminal, gets plain lines).
func isTerminal(f *os.File) bool {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

func newProgress(out *os.File, quiet bool) *progress {
	p := &progress{out: out, quiet: quiet, bar: map[digest.Digest]*layerBar{}, status: map[digest.Digest]image.Status{}}
	if !quiet && isTerminal(out) {
		p.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40))
	}
	return p
}

// event is called one at a time (Pull serialises it).
func (p *progress) event(e image.ProgressEvent) {
	if p.quiet {
		return
	}
	short := e.Digest.Encoded()[:12]
	if p.bars == nil {
		if p.status[e.Digest] != e.Status {
			p.status[e.Digest] = e.Status
			fmt.Fprintf(p.out, "%s: %s\n", short, e.Status)
		}
		return
	}
	b, ok := p.bar[e.Digest]
	if !ok {
		b = &layerBar{}
		b.status.Store(string(e.Status))
		b.Bar = p.bars.AddBar(e.Total,
			mpb.PrependDecorators(decor.Name(short+" "),
				decor.Any(func(decor.Statistics) string { return b.status.Load().(string) }, decor.WC{W: 15, C: decor.DindentRight})),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
		)
		p.bar[e.Digest] = b
	}
	b.status.Store(string(e.Status))
	if e.Current > 0 {
		b.SetCurrent(e.Current)
	}
	if e.Status == image.StatusUnpacked || e.Status == image.StatusFailed {
		b.SetTotal(e.Total, true)
	}
}

func (p *progress) wait() {
	if p.bars != nil {
		for _, b := range p.bar {
			if !b.Completed() {
				b.Abort(false)
			}
		}
		p.bars.Wait()
	}
}
