package main

import (
	"fmt"
	"io"
	"os"

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
	bar    map[digest.Digest]*mpb.Bar
	status map[digest.Digest]image.Status
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func newProgress(out *os.File, quiet bool) *progress {
	p := &progress{out: out, quiet: quiet, bar: map[digest.Digest]*mpb.Bar{}, status: map[digest.Digest]image.Status{}}
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
		b = p.bars.AddBar(e.Total,
			mpb.PrependDecorators(decor.Name(short+" ")),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")),
			mpb.BarRemoveOnComplete(),
		)
		p.bar[e.Digest] = b
		p.status[e.Digest] = e.Status
	}
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
