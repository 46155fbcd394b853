package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// fallbackOCIVersion is what a runtime without a features command (crun
// 1.8) is given: the version every runtime of the 1.x line accepts.
const fallbackOCIVersion = "1.0.2-dev"

// ociVersionFor is the runtime-spec version to write in config.json for
// the runtime bin: the highest its `features` document declares (runc
// 1.1 refuses nothing, crun 1.8 refuses versions it does not know). The
// answer is cached in the run root per binary (path, size, mtime), so
// `features` runs once per runtime and boot.
func (e *Engine) ociVersionFor(ctx context.Context, bin string) string {
	fi, err := os.Stat(bin)
	if err != nil {
		return fallbackOCIVersion
	}
	type cached struct {
		Size    int64     `json:"size"`
		ModTime time.Time `json:"modTime"`
		Version string    `json:"version"`
	}
	// Beside the runtimes' roots, not in one: a runtime lists its root.
	cacheFile := filepath.Join(e.opts.RunRoot, "runtime-versions", filepath.Base(bin)+".json")
	if b, err := os.ReadFile(cacheFile); err == nil {
		var c cached
		if json.Unmarshal(b, &c) == nil && c.Size == fi.Size() && c.ModTime.Equal(fi.ModTime()) && c.Version != "" {
			return c.Version
		}
	}
	version := fallbackOCIVersion
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "features").Output(); err == nil {
		var f struct {
			OCIVersionMax string `json:"ociVersionMax"`
		}
		if json.Unmarshal(out, &f) == nil && f.OCIVersionMax != "" {
			version = f.OCIVersionMax
		}
	}
	if b, err := json.Marshal(cached{Size: fi.Size(), ModTime: fi.ModTime(), Version: version}); err == nil {
		if os.MkdirAll(filepath.Dir(cacheFile), 0o700) == nil {
			if err := writeFileAtomic(cacheFile, b, 0o600); err != nil {
				e.warn("%v", fmt.Errorf("cache the runtime's version: %w", err))
			}
		}
	}
	return version
}
