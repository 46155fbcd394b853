package runtime

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/seccomp"
)

// compiledFilter is the outcome of compiling linux.seccomp.
type compiledFilter struct {
	prog []byte
	err  error
}

func (c compiledFilter) get() ([]byte, error) { return c.prog, c.err }

// compileSeccomp compiles sc into the bytes the init installs, or takes
// them from the cache (sc was validated by create). libseccomp takes 15–20
// ms for a Docker-sized profile; doing it in the runtime keeps it out of the
// init, whose filter is loaded between `start` and the exec.
func compileSeccomp(sc *specs.LinuxSeccomp) ([]byte, error) {
	cache := openFilterCache()
	key := ""
	if cache != nil {
		if k, err := cache.key(sc); err == nil {
			key = k
			if b := cache.get(key); b != nil {
				if _, err := seccomp.UnmarshalProgram(b); err == nil {
					return b, nil
				}
			}
		}
	}
	prog, err := seccomp.Compile(sc)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: %w", err)
	}
	b, err := prog.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if key != "" {
		cache.put(key, b)
	}
	return b, nil
}

// compileSeccompAsync compiles on another thread while the init starts and
// sets up the rootfs, which leaves this process waiting anyway; the result
// is sent with the hooks-done message.
func compileSeccompAsync(sc *specs.LinuxSeccomp) <-chan compiledFilter {
	out := make(chan compiledFilter, 1)
	go func() {
		var c compiledFilter
		c.prog, c.err = compileSeccomp(sc)
		out <- c
	}()
	return out
}
