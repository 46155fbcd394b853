package image

import (
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRuntimeConfigDefaults(t *testing.T) {
	rc := RuntimeConfigOf(ocispec.Image{Config: ocispec.ImageConfig{Entrypoint: []string{"/init"}, Cmd: []string{"--serve"}, Env: []string{"A=1"}}})
	if rc.WorkingDir != "/" {
		t.Errorf("WorkingDir = %q, want /", rc.WorkingDir)
	}
	if want := []string{"A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}; !reflect.DeepEqual(rc.Env, want) {
		t.Errorf("Env = %q, want %q", rc.Env, want)
	}
	if want := []string{"/init", "--serve"}; !reflect.DeepEqual(rc.Args(), want) {
		t.Errorf("Args = %q, want %q", rc.Args(), want)
	}
	if rc := RuntimeConfigOf(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"PATH=/bin"}}}); len(rc.Env) != 1 {
		t.Errorf("an image's own PATH was added to: %q", rc.Env)
	}
}
