package image

import (
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RuntimeConfig is what an image says a container from it should run with,
// unless the user overrides it. The engine builds a runtime spec from it.
type RuntimeConfig struct {
	User       string   // "uid[:gid]" or a name, resolved in the rootfs by the engine
	Env        []string // KEY=value, in the image's order
	WorkingDir string   // "/" when the image names none
	// Args is Entrypoint followed by Cmd, as Docker joins them.
	Entrypoint   []string
	Cmd          []string
	ExposedPorts []string // "80/tcp", sorted
	Volumes      []string // sorted
	StopSignal   string   // empty means SIGTERM
	Labels       map[string]string
}

// Args is the process a container runs by default: entrypoint then cmd.
func (c RuntimeConfig) Args() []string {
	return append(append([]string{}, c.Entrypoint...), c.Cmd...)
}

// RuntimeConfigOf extracts the container defaults from an image config.
func RuntimeConfigOf(img ocispec.Image) RuntimeConfig {
	c := img.Config
	rc := RuntimeConfig{
		User:       c.User,
		Env:        append([]string{}, c.Env...),
		WorkingDir: c.WorkingDir,
		Entrypoint: append([]string{}, c.Entrypoint...),
		Cmd:        append([]string{}, c.Cmd...),
		StopSignal: c.StopSignal,
		Labels:     c.Labels,
	}
	if rc.WorkingDir == "" {
		rc.WorkingDir = "/"
	}
	if !hasEnv(rc.Env, "PATH") {
		rc.Env = append(rc.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	for p := range c.ExposedPorts {
		rc.ExposedPorts = append(rc.ExposedPorts, p)
	}
	for v := range c.Volumes {
		rc.Volumes = append(rc.Volumes, v)
	}
	sort.Strings(rc.ExposedPorts)
	sort.Strings(rc.Volumes)
	return rc
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if len(e) > len(key) && e[:len(key)+1] == key+"=" {
			return true
		}
	}
	return false
}
