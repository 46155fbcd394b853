package initproc

import (
	"errors"
	"os"
	"strconv"
)

// EnvSelfCreate is set by berth-runtime's constructor (fastpath's
// prespawn.c) on an init that does create's work itself; its value is the
// CLONE_NEW* flags of the namespaces the stage made.
const EnvSelfCreate = "_BERTH_SELFCREATE"

// ErrFallback is what a self-create returns for a config it cannot take:
// the init answers ReplyFallback and berth-runtime creates the container
// the usual way, with nothing made yet.
var ErrFallback = errors.New("not a config the init creates itself")

// InitSelf is Init for an init that does create's work itself: create
// makes the container's cgroups and state and returns the init's config
// and the fd of its exec fifo; the init then sets the container up as
// Init does and answers ready (or why not) to berth-runtime's constructor,
// which waits for it.
func InitSelf(create func() (*Config, int, error)) {
	ip := newInitProc()
	cfg, fifo, err := create()
	if errors.Is(err, ErrFallback) {
		ip.enc.Encode(Reply{Type: ReplyFallback})
		os.Exit(1)
	}
	if err == nil {
		err = ip.setup(cfg, strconv.Itoa(fifo))
	}
	ip.exit(err)
}
