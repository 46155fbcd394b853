package secmon

import "golang.org/x/sys/unix"

// sysNumbers are the system calls the rules name, by name, on this
// architecture.
var sysNumbers = map[string]uint32{
	"ptrace": unix.SYS_PTRACE, "process_vm_readv": unix.SYS_PROCESS_VM_READV, "process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "fsmount": unix.SYS_FSMOUNT, "move_mount": unix.SYS_MOVE_MOUNT,
	"open_tree": unix.SYS_OPEN_TREE, "fsopen": unix.SYS_FSOPEN, "fsconfig": unix.SYS_FSCONFIG, "mount_setattr": unix.SYS_MOUNT_SETATTR,
	"init_module": unix.SYS_INIT_MODULE, "finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
	"bpf": unix.SYS_BPF, "setns": unix.SYS_SETNS, "unshare": unix.SYS_UNSHARE,
	"setuid": unix.SYS_SETUID, "setreuid": unix.SYS_SETREUID, "setresuid": unix.SYS_SETRESUID, "setfsuid": unix.SYS_SETFSUID,
	"setgid": unix.SYS_SETGID, "setregid": unix.SYS_SETREGID, "setresgid": unix.SYS_SETRESGID, "setfsgid": unix.SYS_SETFSGID,
	"capset": unix.SYS_CAPSET, "execve": unix.SYS_EXECVE, "execveat": unix.SYS_EXECVEAT,
	"openat": unix.SYS_OPENAT, "openat2": unix.SYS_OPENAT2,
}
