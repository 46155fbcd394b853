package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-project/berth/internal/errdefs"
)

func TestGRPCError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{errdefs.ErrNotFound, codes.NotFound},
		{errdefs.ErrInvalidArgument, codes.InvalidArgument},
		{errdefs.ErrAlreadyExists, codes.AlreadyExists},
		{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fmt.Errorf("plain"), codes.Unknown},
		{status.Error(codes.ResourceExhausted, "kept"), codes.ResourceExhausted},
	} {
		wrapped := fmt.Errorf("image %q: %w", "x", tc.err)
		got := grpcError(wrapped)
		if status.Code(got) != tc.want || !strings.HasSuffix(status.Convert(got).Message(), wrapped.Error()[len(`image "x": `):]) ||
			!strings.HasPrefix(status.Convert(got).Message(), `image "x": `) {
			t.Errorf("grpcError(%v) = %v, want code %v with the message kept", wrapped, got, tc.want)
		}
	}
	if grpcError(nil) != nil {
		t.Error("grpcError(nil) != nil")
	}
}
