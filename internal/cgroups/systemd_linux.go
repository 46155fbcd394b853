package cgroups

import (
	"fmt"
	"slices"
	"strings"

	systemdDbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/systemd"
)

// The systemd driver (--systemd-cgroup): a container's cgroup is a
// transient scope unit that systemd creates over D-Bus, with Delegate=yes
// and the container's limits as unit properties (MemoryMax, TasksMax,
// CPUQuota, ...), written to the cgroup files as well. The driver itself is
// opencontainers/cgroups/systemd, as in runc; this file parses the
// cgroupsPath and orders the steps.
//
// Order: a scope cannot exist without a process (systemd refuses an empty
// scope), so unlike a cgroupfs directory it is not made before the
// container's init: Apply(-1) and Set before the init only hold the
// resources, and Apply(pid) with the init's pid starts the scope and then
// sets them. A limit the host refuses still fails the create, before the
// container's process runs.

// systemdScope tracks a scope not started yet.
type systemdScope struct {
	started bool
	pending *cgroups.Resources // what Set was given before the scope existed
}

// parseSystemdPath splits a systemd cgroupsPath "slice:prefix:name" as runc
// does: the scope is prefix-name.scope in the
// slice, a slice name with dashes nesting as systemd nests it
// (kubepods-burstable.slice is kubepods.slice/kubepods-burstable.slice).
// An empty slice means system.slice (user.slice when rootless). An empty
// path gives the container the scope berth-ID.scope there.
//
// The parts must be plain unit-name characters: they become a unit name and
// a path below /sys/fs/cgroup, so nothing may climb out of the slice.
func parseSystemdPath(path, id string) (slice, prefix, name string, err error) {
	if path == "" {
		return "", "berth", id, nil
	}
	parts := strings.Split(path, ":")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: %q is not of the systemd form slice:prefix:name (for example system.slice:berth:%s)", path, id)
	}
	slice, prefix, name = parts[0], parts[1], parts[2]
	if slice != "" {
		if err := unitNameChars(slice); err != nil {
			return "", "", "", fmt.Errorf("linux.cgroupsPath: slice %q: %w", slice, err)
		}
		if _, err := systemd.ExpandSlice(slice); err != nil {
			return "", "", "", fmt.Errorf("linux.cgroupsPath: slice %q: want NAME.slice, NAME of dash-separated non-empty parts", slice)
		}
	}
	if prefix == "" {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: %q has an empty prefix (slice:prefix:name; the scope is prefix-name.scope)", path)
	}
	if err := unitNameChars(prefix); err != nil {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: prefix %q: %w", prefix, err)
	}
	if name == "" {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: %q has an empty name (slice:prefix:name)", path)
	}
	if err := unitNameChars(name); err != nil {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: name %q: %w", name, err)
	}
	if name == "." || name == ".." || prefix == "." || prefix == ".." {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: %q: a prefix or name of . or .. is not a unit name", path)
	}
	if strings.HasSuffix(name, ".slice") {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: name %q: a container runs in a scope, not a slice", name)
	}
	// systemd's limit on unit names (UNIT_NAME_MAX, suffix included).
	if len(prefix)+len(name)+len("-.scope") > 255 {
		return "", "", "", fmt.Errorf("linux.cgroupsPath: %q: the unit name would exceed systemd's 255 characters", path)
	}
	return slice, prefix, name, nil
}

// unitNameChars checks s holds only the characters systemd allows in unit
// names (ASCII letters, digits, "-", "_", ".", "\", and ":" which the path
// form reserves as its separator).
func unitNameChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == '\\':
		default:
			return fmt.Errorf("character %q at offset %d is not allowed in a systemd unit name", c, i)
		}
	}
	return nil
}

// applyScope is Apply for the systemd driver; see the comment at the top.
func (m *Manager) applyScope(pid int) error {
	if pid == -1 && !m.scope.started {
		return nil
	}
	if err := m.m.Apply(pid); err != nil {
		return fmt.Errorf("create systemd scope: %w", fieldError(err))
	}
	m.scope.started = true
	if res := m.scope.pending; res != nil {
		m.scope.pending = nil
		if err := m.m.Set(res); err != nil {
			return fmt.Errorf("set cgroup limits: %w", fieldError(err))
		}
	}
	return nil
}

// systemdPropertyPrefix starts the spec annotations that set properties of
// the container's scope, as runc has them: the rest of the key is the
// property name, the value a GVariant text ("uint64 123456789",
// "'inactive-or-failed'"); time properties take their USec names.
const systemdPropertyPrefix = "org.systemd.property."

// maxPropertyValue bounds an annotation's value: it is parsed, and sent
// to systemd.
const maxPropertyValue = 4096

// systemdProperties turns the org.systemd.property.* annotations into unit
// properties for the scope, or names the annotation at fault.
func systemdProperties(annotations map[string]string) ([]systemdDbus.Property, error) {
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		if strings.HasPrefix(k, systemdPropertyPrefix) {
			keys = append(keys, k)
		}
	}
	// Sorted: the same config gives the same unit, whatever the map order.
	slices.Sort(keys)
	var props []systemdDbus.Property
	for _, k := range keys {
		name := strings.TrimPrefix(k, systemdPropertyPrefix)
		if name == "" || strings.IndexFunc(name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return nil, fmt.Errorf("annotations[%q]: %q is not a systemd property name (letters and digits)", k, name)
		}
		value := annotations[k]
		// godbus's parser loops forever on some non-ASCII digits (such
		// as U+1BB0); systemd's property values are ASCII anyway.
		if len(value) > maxPropertyValue || strings.IndexFunc(value, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			return nil, fmt.Errorf("annotations[%q]: the value must be printable ASCII of at most %d bytes", k, maxPropertyValue)
		}
		v, err := parseVariant(value)
		if err != nil {
			return nil, fmt.Errorf("annotations[%q]: value %q is not a GVariant text (for example \"uint64 123456789\" or \"'inactive-or-failed'\"): %w", k, value, err)
		}
		props = append(props, systemdDbus.Property{Name: name, Value: v})
	}
	return props, nil
}

// parseVariant is dbus.ParseVariant with its panics (it has some, on typed
// empty arrays such as "@b []") turned into errors.
func parseVariant(s string) (v dbus.Variant, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return dbus.ParseVariant(s, dbus.Signature{})
}
