// Package errdefs holds the sentinel errors Berth's packages wrap to say what
// kind of failure happened, so callers can branch with errors.Is without
// parsing messages. Errors are wrapped with context (fmt.Errorf("...: %w",
// errdefs.ErrNotFound)) where they arise; mapping to gRPC or HTTP codes
// happens only at an API edge, never here.
package errdefs

import "errors"

var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that name exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the request itself is malformed (an empty key, a
	// hostile path in a layer); retrying it unchanged cannot succeed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the request is well formed but the object is in
	// the wrong state for it (removing a snapshot that has children,
	// committing a view).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrNotImplemented: the operation or format is not supported.
	ErrNotImplemented = errors.New("not implemented")
)

// IsNotFound reports whether err wraps ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err wraps ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err wraps ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsFailedPrecondition reports whether err wraps ErrFailedPrecondition.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
