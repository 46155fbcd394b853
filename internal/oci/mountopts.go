package oci

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// MountOptions is a spec mount's options list split into what mount(2),
// mount_setattr(2) and the filesystem each take.
type MountOptions struct {
	Flags       uintptr   // MS_* flags to set
	Cleared     uintptr   // MS_* flags the options clear explicitly (rw, suid, ...)
	Propagation []uintptr // MS_SHARED, MS_REC|MS_PRIVATE, ... in order
	AttrSet     uint64    // MOUNT_ATTR_* to set recursively (rro, rnosuid, ...)
	AttrClr     uint64    // MOUNT_ATTR_* to clear recursively (rrw, rsuid, ...)
	Data        []string  // options passed to the filesystem
	Bind        bool
	Recursive   bool // rbind
	// CopyUp is "tmpcopyup" (crun's and runc's extension, which Podman
	// sends for --tmpfs): a tmpfs starts with a copy of the directory it
	// covers.
	CopyUp bool
}

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_REC | unix.MS_PRIVATE,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_REC | unix.MS_SHARED,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_REC | unix.MS_SLAVE,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_REC | unix.MS_UNBINDABLE,
}

// PropagationFlag returns the mount(2) flags of a propagation name such as
// "rslave".
func PropagationFlag(name string) (uintptr, bool) {
	f, ok := propagationFlags[name]
	return f, ok
}

var recursiveAttrs = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// ParseMountOptions splits a spec mount's options. Options that are neither
// mount flags nor propagation nor recursive attributes go to the filesystem
// as data, as runc does; the only error is an option that cannot be right
// anywhere (empty, or with a character the kernel's option parser splits on).
func ParseMountOptions(options []string) (MountOptions, error) {
	var mo MountOptions
	for _, o := range options {
		switch {
		case o == "":
			return mo, fmt.Errorf("empty option")
		case o == "bind":
			mo.Bind = true
			mo.Flags |= unix.MS_BIND
		case o == "rbind":
			mo.Bind, mo.Recursive = true, true
			mo.Flags |= unix.MS_BIND | unix.MS_REC
		case o == "tmpcopyup":
			mo.CopyUp = true
		case o == "idmap", o == "ridmap":
			// Idmapped mounts are driven by the mount's uidMappings,
			// not by this word.
		default:
			if f, ok := mountFlags[o]; ok {
				if f.clear {
					mo.Flags &^= f.flag
					mo.Cleared |= f.flag
				} else {
					mo.Flags |= f.flag
					mo.Cleared &^= f.flag
				}
				continue
			}
			if p, ok := propagationFlags[o]; ok {
				mo.Propagation = append(mo.Propagation, p)
				continue
			}
			if a, ok := recursiveAttrs[o]; ok {
				if a.clear {
					mo.AttrClr |= a.attr
				} else {
					mo.AttrSet |= a.attr
				}
				continue
			}
			if strings.ContainsAny(o, ",\x00") {
				return mo, fmt.Errorf("option %q contains a comma or NUL", o)
			}
			mo.Data = append(mo.Data, o)
		}
	}
	return mo, nil
}
