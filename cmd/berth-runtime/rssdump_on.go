//go:build rssdump

package main

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
)

// rssDump is a measurement aid, built only with -tags rssdump: when
// BERTH_RSSDUMP names a file, a command writes there, as it exits, the
// memory lines of /proc/self/status (VmHWM, RssAnon, RssFile) and the
// address of every page present in its mappings of 16 MiB or less, with
// the mapping's name ("addr name\n" after a "PAGES" line). The kernel maps a
// binary's text in fault-around windows (64 KiB), so the pages, matched
// against `go tool nm -size -sort address` of the same (unstripped) build,
// show which packages' code and data the command's RSS is made of. The
// status and the page list are read before anything is written, so the
// dump's own work is not in them.
func rssDump() {
	path := os.Getenv("BERTH_RSSDUMP")
	if path == "" {
		return
	}
	var status, maps [32 << 10]byte
	ns := readInto("/proc/self/status", status[:])
	nm := readInto("/proc/self/maps", maps[:])
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return
	}
	defer pm.Close()
	var b strings.Builder
	b.Grow(1 << 20)
	for _, l := range strings.Split(string(status[:ns]), "\n") {
		if strings.HasPrefix(l, "Vm") || strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "Threads") {
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("PAGES\n")
	entries := make([]byte, 64<<10)
	for _, l := range strings.Split(string(maps[:nm]), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		// Reservations (Go's arenas, thread stacks' guard areas) and
		// [vsyscall] at the top of the address space are left out.
		if err1 != nil || err2 != nil || end-start > 16<<20 || end > 1<<47 {
			continue
		}
		name := strings.Join(f[5:], " ")
		for a := start; a < end; a += uint64(len(entries)/8) * 4096 {
			n, _ := pm.ReadAt(entries, int64(a/4096*8))
			for i := 0; i < n/8 && a+uint64(i)*4096 < end; i++ {
				if binary.LittleEndian.Uint64(entries[i*8:])&(1<<63) != 0 {
					b.WriteString(strconv.FormatUint(a+uint64(i)*4096, 16) + " " + name + "\n")
				}
			}
		}
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
}

func readInto(path string, buf []byte) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, _ := f.Read(buf)
	return n
}
