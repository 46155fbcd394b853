package engine

import (
	"context"
)

// ImageTrust decides whether an image may run (internal/trust.Checker):
// asked at every create and start, against the policy as it is then.
// stage is "create" or "start"; an error refuses.
type ImageTrust interface {
	CheckImage(ctx context.Context, imageName, stage, container, pod string) error
}

// checkTrust asks Options.Trust, if set, about a container's image; pod
// is the sandbox the container joins ("" for its own).
func (e *Engine) checkTrust(ctx context.Context, stage, imageName, container, pod string) error {
	if e.opts.Trust == nil {
		return nil
	}
	return e.opts.Trust.CheckImage(ctx, imageName, stage, container, pod)
}

// RecordImageEvent appends an image event (type "image", action "verify"
// or "refuse") to the events of root and namespace, for the trust
// decisions taken outside an engine (a pull) as well as inside.
func RecordImageEvent(root, namespace, action, imageRef string, attrs map[string]string) {
	a := map[string]string{"name": imageRef, "image": imageRef}
	for k, v := range attrs {
		a[k] = v
	}
	e := &Engine{opts: Options{Root: root, Namespace: namespace}}
	e.emitEvent(Event{Type: "image", Action: action, Actor: EventActor{ID: imageRef, Attributes: a}})
}
