//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Berth's runtime security monitor: the in-kernel half.
//
// Every program first looks the acting task's cgroup v2 id up in a
// policy map, so a container without rules costs one hash lookup per
// exec and nothing per connect (the connect programs are attached to the
// cgroups of containers with rules only).
//
// A policy holds up to MAX_RULES kernel rules per event kind. A rule is a
// boolean function of up to MAX_ATOMS atoms (a path equality or prefix,
// drift, a CIDR, a port range, a protocol), given as its truth table: the
// atoms are evaluated into a bitmask that indexes the table. User space
// compiles the CEL condition into that form (internal/secmon).
//
// Kernel structures are declared here with only the fields used, under
// preserve_access_index, so CO-RE relocates them against the running
// kernel's BTF and no generated vmlinux.h is needed.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_ATOMS 8
#define MAX_RULES 8
#define ATOM_DATA 128
#define EV_PATH 256
#define EV_ARGS 256

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define TMPFS_MAGIC 0x01021994
#define SIGKILL 9
#define AF_INET 2
#define AF_INET6 10

// KIND_EXEC_TRY is an execve(at) at entry, for exec deny rules: Landlock
// refuses the exec before sched_process_exec, so the attempt is the event.
enum kind { KIND_EXEC = 1, KIND_CONNECT = 2, KIND_SYSCALL = 3, KIND_OPEN = 4, KIND_EXEC_TRY = 5, KIND_ACCEPT = 6, KIND_EXIT = 7 };
#define MAX_SYSCALL 512
#define O_ACCMODE 3
#define O_CREAT 0100
#define O_TRUNC 01000
enum atom_kind {
	ATOM_PATH_EQ = 1,
	ATOM_PATH_PREFIX = 2,
	ATOM_DRIFT = 3,
	ATOM_CIDR = 4, // data: 16 bytes (IPv4 as ::ffff:a.b.c.d), len: prefix bits of the 128
	ATOM_PORT = 5, // lo..hi inclusive
	ATOM_PROTO = 6, // lo: IPPROTO_*
	ATOM_PCOMM_EQ = 7, // the parent's comm (exec), as ATOM_PATH_EQ
};
enum action { ACT_NONE = 0, ACT_ALERT = 1, ACT_DENY = 2, ACT_KILL = 3 };
#define POLICY_REPORT 1 // user space has alert rules for this kind: report every event
#define POLICY_DENY 2 // some rule denies: the LSM programs have work to do

struct atom {
	__u32 kind;
	__u32 len;
	__u32 lo;
	__u32 hi;
	__u8 data[ATOM_DATA];
};

struct krule {
	__u32 natoms;
	__u32 action;
	__u32 id;
	__u32 pad;
	__u64 table[(1 << MAX_ATOMS) / 64];
	struct atom atoms[MAX_ATOMS];
};

struct policy {
	__u32 nrules;
	__u32 flags;
	struct krule rules[MAX_RULES];
};

struct event {
	__u64 ts;
	__u64 cgid;
	__u32 kind;
	__u32 pid;
	__u32 tgid;
	__u32 ppid;
	__u32 uid;
	__s32 rule;
	__u32 action;
	__u32 drift;
	__u16 family;
	__u16 port;
	__u32 proto;
	__u8 addr[16];
	__u32 args_len;
	__u32 nr; // system call number (KIND_SYSCALL, KIND_OPEN)
	__u64 sargs[4]; // its first arguments
	char comm[16];
	char path[EV_PATH];
	char args[EV_ARGS];
	// Fields below were added later: append only, never reorder. The
	// programs of an older agent (through their pinned links, until the
	// next agent replaces them) send the shorter event; the agent
	// zero-pads it.
	__u32 exit_code; // KIND_EXIT: the wait status (code << 8 | signal, 0x80 core)
	__u32 pad2;
	char pcomm[16]; // KIND_EXEC: the parent's comm
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} exec_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} connect_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

// sys_policy says which system calls of a container are reported, and
// which numbers are the open family on this architecture (user space
// knows them; 0xffffffff where the call does not exist).
struct sys_policy {
	__u64 report[MAX_SYSCALL / 64];
	__u32 nr_open;
	__u32 nr_openat;
	__u32 nr_openat2;
	__u32 nr_creat;
	__u32 nr_execve;
	__u32 nr_execveat;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sys_policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sys_policies SEC(".maps");

// sys_deny says, per container, which system calls its seccomp deny
// rules cover: seccomp refuses a call before the sys_enter tracepoint, so
// their denials are reported at sys_exit (a call that failed with EPERM
// or EACCES; the agent checks the rule's condition on the arguments).
struct sys_deny {
	__u64 calls[MAX_SYSCALL / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sys_deny);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sys_denies SEC(".maps");

// accept_watch holds the cgroup ids of the containers whose inbound
// connections are reported (alert rules on accept).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accept_watch SEC(".maps");

// accept_policy holds, per container, the accept deny rules the
// cgroup_skb/ingress program checks on inbound TCP SYNs.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accept_policy SEC(".maps");

// exit_policy holds the exit rules of the containers with alert rules on
// exit: kernel rules over the status (the port atom reads the exit code,
// the protocol atom the killing signal), so that only the exits a rule
// matches go up to the agent, or, with POLICY_REPORT, every exit.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} exit_policy SEC(".maps");

// open_policy holds, per container, the open deny rules the file_open
// LSM program checks on opens for writing (kernels with BPF LSM only).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct policy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} open_policy SEC(".maps");

// lsm_probe is the probe's state (not pinned: one per probing process):
// [0] the thread group to count, [1] how often the probe program ran for
// it.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lsm_probe SEC(".maps");

// An event is built in a slot: the decision never depends on room in
// the ring buffer (a full buffer loses the report, not the enforcement).
// The slots are per CPU, and a program keeps its CPU while it runs
// (migration is disabled), but it may be interrupted by a softirq that
// runs another program, and BPF LSM and cgroup sock_addr programs may be
// preempted by another task that runs one on the same CPU: each run
// claims a slot of its own (slot_claim: an atomic fetch-or on the CPU's
// claim mask) and gives it back before it returns, so no two runs share
// one. A nesting counter would not do: a preempted run may resume after
// the one that preempted it ends, or before (task preemption is not
// last-in first-out).
//
// The slots are in pools, each with its own claim mask, so that runs
// preempted halfway (which a container can cause by the thousand: its
// threads' sendto calls) can never hold the slots of the runs that fail
// closed for other containers (exec kills, SYN drops):
//   POOL_TP     the raw tracepoint programs (exec, exit, sys_enter,
//               sys_exit, accept): they run with preemption disabled,
//               even on PREEMPT_RT, so their holders nest last-in
//               first-out (a process-context run, a softirq's on top):
//               the pool cannot be used up;
//   POOL_SOFTIRQ the ingress program: softirq context, not preempted
//               by tasks except on PREEMPT_RT, where the softirqs of a
//               CPU are serialized (unless the kernel drops that lock,
//               PREEMPT_RT_NEEDS_BH_LOCK off: then only ingress runs
//               can hold its slots);
//   POOL_TASK   the preemptible programs (BPF LSM, cgroup connect and
//               sendmsg) when their task's own slot (task_slots)
//               cannot be had: it can be used up by preempted runs, and
//               then only these programs fail closed.
#define NSLOTS 4
#define POOL_TP 0
#define POOL_SOFTIRQ 1
#define POOL_TASK 2
#define NPOOLS 3

// pathbuf holds a path as path_name builds it: a whole PATH_MAX, so a
// long path is read (and its start judged) rather than refused, and room
// to copy a name at any offset below PATH_MAX.
#define PATH_MAX 4096
#define NAME_MAX 255
struct pathbuf {
	char b[PATH_MAX + NAME_MAX + 1];
};

// The event first: a pointer to the event is one to its slot.
struct slot {
	struct event ev;
	struct pathbuf pb;
};

// slots holds the pools' slots: slot i of pool p at key p*NSLOTS+i.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NPOOLS * NSLOTS);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

// task_slots holds the slots of the BPF LSM programs and (where the
// kernel lets them use task storage) of the connect and sendmsg ones, one
// per task: a task runs one of these programs at a time (none runs
// inside another, none in interrupts) and interrupts use the per-CPU
// slots, so no other run shares it, and no number of tasks preempted
// inside the programs uses them up (the per-CPU slots can be: under full
// preemption a busy CPU had four tasks preempted halfway through an
// open). Made at a task's first judged operation, freed with the task;
// where it cannot be had (no memory; before 6.2, the kernel's task
// storage in use on this CPU by a task preempted inside the helper;
// connect programs on a kernel without the helpers there, whose calls
// the loader takes out), a slot of POOL_TASK stands in.
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct slot);
} task_slots SEC(".maps");

// TASK_SLOT is the slot number of a task's own slot (task_slots).
#define TASK_SLOT (NPOOLS * NSLOTS)

// slot_claims holds, per CPU and pool (the key), the mask of the pool's
// slots in use (bit i: slot i). Zero whenever no program runs on the
// CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NPOOLS);
	__type(key, __u32);
	__type(value, __u64);
} slot_claims SEC(".maps");

// slot_full counts the runs that found every slot of their pool on their
// CPU in use: they decided without an event (deny and kill rules fail
// closed) and their report is counted in lost. Pinned, like lost: a
// restarted agent keeps its predecessor's links, whose programs count
// here.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} slot_full SEC(".maps");

// lost counts events the ring buffer had no room for (the agent was
// down or behind); the agent reports them.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lost SEC(".maps");

// Kernel types, only the fields used (CO-RE).
struct super_block {
	unsigned long s_magic;
} __attribute__((preserve_access_index));
struct inode {
	struct super_block *i_sb;
} __attribute__((preserve_access_index));
struct qstr {
	__u32 len;
	const unsigned char *name;
} __attribute__((preserve_access_index));
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));
struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
} __attribute__((preserve_access_index));
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));
struct file {
	struct path f_path;
	struct inode *f_inode;
	unsigned int f_mode;
} __attribute__((preserve_access_index));
struct ovl_inode {
	struct inode vfs_inode;
	struct dentry *__upperdentry;
} __attribute__((preserve_access_index));
struct linux_binprm {
	struct file *file;
	const char *filename;
	const char *interp;
} __attribute__((preserve_access_index));
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));
// The system call's registers: x86-64 and arm64 flavours, picked at
// load time by which fields the kernel's struct pt_regs has.
struct pt_regs___x86 {
	unsigned long di, si, dx, r10, orig_ax;
} __attribute__((preserve_access_index));
struct pt_regs___arm64 {
	unsigned long long orig_x0;
	unsigned long long regs[31];
	int syscallno;
} __attribute__((preserve_access_index));
struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));
struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));
struct sock_cgroup_data {
	struct cgroup *cgroup;
} __attribute__((preserve_access_index));
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));
struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
} __attribute__((preserve_access_index));
typedef struct {
	int counter;
} atomic_t;
struct signal_struct {
	atomic_t live;
	int group_exit_code;
	unsigned int flags;
} __attribute__((preserve_access_index));
struct task_struct {
	int tgid;
	int exit_code;
	char comm[16];
	struct task_struct *real_parent;
	struct mm_struct *mm;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));
#define SIGNAL_GROUP_EXIT 0x00000004

// count adds one to the counter of a one-entry array.
static __always_inline void count(void *map)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(map, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline void count_lost(void) { count(&lost); }

// emit sends the event to the agent; a full ring buffer loses the report
// (counted), never the decision.
static __always_inline void emit(struct event *ev)
{
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), 0))
		count_lost();
}

// container_lookup finds the policy of the container the current task
// belongs to: its own cgroup's, else its nearest ancestor's that has one,
// so that a process that moves itself into a child cgroup (where the
// cgroup is delegated) stays under its container's rules. Host processes
// sit near the root: the walk ends at once for them.
static __always_inline void *container_lookup(void *map, __u64 *cgid)
{
	__u64 cg = bpf_get_current_cgroup_id();
	void *p = bpf_map_lookup_elem(map, &cg);
	if (p) {
		*cgid = cg;
		return p;
	}
	for (int level = 1; level < 8; level++) {
		__u64 a = bpf_get_current_ancestor_cgroup_id(level);
		if (!a || a == cg)
			break;
		p = bpf_map_lookup_elem(map, &a);
		if (p) {
			*cgid = a;
			return p;
		}
	}
	return 0;
}

// slot_claim takes a free slot of pool on this CPU: its key in slots,
// or -1 when every slot of the pool is in use. The fetch-or is atomic
// against the programs of other tasks and of interrupts on this CPU
// alike; a bit another run holds stays set and is passed over. A global
// function: the verifier checks its loop once.
__attribute__((noinline)) int slot_claim(__u32 pool)
{
	__u32 k = pool;
	__u64 *m = bpf_map_lookup_elem(&slot_claims, &k);
	if (!m)
		return -1;
	for (__u32 i = 0; i < NSLOTS; i++) {
		__u64 bit = 1ULL << i;
		if (!(__sync_fetch_and_or(m, bit) & bit))
			return pool * NSLOTS + i;
	}
	return -1;
}

// slot_release gives slot i (a key in slots) back to its pool (a task's
// own slot needs nothing). Every run that claimed a slot calls it once,
// after its last use of the event, on every path.
static __always_inline void slot_release(int i)
{
	if (i < 0 || i >= NPOOLS * NSLOTS)
		return;
	__u32 k = (__u32)i / NSLOTS;
	__u64 *m = bpf_map_lookup_elem(&slot_claims, &k);
	if (m)
		__sync_fetch_and_and(m, ~(1ULL << (i & (NSLOTS - 1))));
}

// slot_event claims a slot of pool and returns its event, zeroed, with
// *slot set to the key to give back; 0 when the pool has no slot free on
// this CPU (counted in slot_full, and in lost: the event cannot be
// reported). Callers that decide then fail closed.
static __always_inline struct event *slot_event(__u32 pool, int *slot)
{
	int i = slot_claim(pool);
	struct slot *s = 0;
	if (i >= 0) {
		__u32 k = i;
		s = bpf_map_lookup_elem(&slots, &k);
		if (!s)
			slot_release(i); // never: the key is in range
	}
	if (!s) {
		count(&slot_full);
		count_lost();
		return 0;
	}
	__builtin_memset(&s->ev, 0, sizeof(s->ev));
	*slot = i;
	return &s->ev;
}

static __always_inline void report(struct policy *p, struct event *ev)
{
	if (ev->rule < 0 && !(p->flags & POLICY_REPORT))
		return;
	emit(ev);
}

// atom_true is a global function: the verifier checks it once, not once
// per rule and atom of every caller (which would exceed its budget).
__attribute__((noinline)) int atom_true(const struct atom *a, const struct event *ev)
{
	if (!a || !ev)
		return 0;
	switch (a->kind) {
	case ATOM_PCOMM_EQ: {
		__u32 n = a->len;
		if (n >= 16)
			return 0;
		for (__u32 i = 0; i < 16; i++) {
			if (i >= n)
				break;
			if (ev->pcomm[i] != a->data[i])
				return 0;
		}
		return ev->pcomm[n & 15] == 0;
	}
	case ATOM_PATH_EQ:
	case ATOM_PATH_PREFIX: {
		__u32 n = a->len;
		if (n >= ATOM_DATA)
			return 0;
		for (__u32 i = 0; i < ATOM_DATA; i++) {
			if (i >= n)
				break;
			if (ev->path[i] != a->data[i])
				return 0;
		}
		if (a->kind == ATOM_PATH_EQ)
			return ev->path[n & (EV_PATH - 1)] == 0;
		return 1;
	}
	case ATOM_DRIFT:
		return ev->drift != 0;
	case ATOM_CIDR: {
		__u32 bits = a->len;
		if (bits > 128)
			return 0;
		for (__u32 i = 0; i < 16; i++) {
			if (bits == 0)
				break;
			__u8 m = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
			if ((ev->addr[i] & m) != (a->data[i] & m))
				return 0;
			bits = bits >= 8 ? bits - 8 : 0;
		}
		return 1;
	}
	case ATOM_PORT:
		return ev->port >= a->lo && ev->port <= a->hi;
	case ATOM_PROTO:
		return ev->proto == a->lo;
	}
	return 0;
}

// decide returns the index of the first rule whose condition holds, or -1.
// A global function, like atom_true: the verifier checks its loops once,
// not once per caller in each caller's state (the exit program's state
// made the inlined loops exceed the verifier's budget).
__attribute__((noinline)) int decide(const struct policy *p, const struct event *ev)
{
	if (!p || !ev)
		return -1;
	for (__u32 r = 0; r < MAX_RULES; r++) {
		if (r >= p->nrules)
			break;
		const struct krule *k = &p->rules[r];
		__u32 mask = 0;
		for (__u32 i = 0; i < MAX_ATOMS; i++) {
			if (i >= k->natoms)
				break;
			// Branch-free: a branch here would give the verifier
			// one state per combination of atoms (2^MAX_ATOMS per
			// rule), and every program that decides pays that at
			// load.
			mask |= ((__u32)atom_true(&k->atoms[i], ev) & 1) << i;
		}
		mask &= (1 << MAX_ATOMS) - 1;
		if ((k->table[mask >> 6] >> (mask & 63)) & 1)
			return r;
	}
	return -1;
}

// enforces says whether a rule of the policy denies or kills: a run that
// finds no slot free, and so cannot judge, then fails closed. A global
// function, like decide.
__attribute__((noinline)) int enforces(const struct policy *p)
{
	if (!p)
		return 0;
	for (__u32 r = 0; r < MAX_RULES; r++) {
		if (r >= p->nrules)
			break;
		if (p->rules[r].action == ACT_DENY || p->rules[r].action == ACT_KILL)
			return 1;
	}
	return 0;
}

static __always_inline void fill_task(struct event *ev)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 pt = bpf_get_current_pid_tgid();
	ev->ts = bpf_ktime_get_boot_ns();
	ev->pid = (__u32)pt;
	ev->tgid = pt >> 32;
	ev->ppid = BPF_CORE_READ(t, real_parent, tgid);
	ev->uid = (__u32)bpf_get_current_uid_gid();
	ev->rule = -1;
	ev->action = ACT_NONE;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

// task_start starts in ev (0: none) the event of the current task in
// container cgid.
static __always_inline struct event *task_start(struct event *ev, __u32 kind, __u64 cgid)
{
	if (!ev)
		return 0;
	fill_task(ev);
	ev->kind = kind;
	ev->cgid = cgid;
	return ev;
}

// task_event claims a per-CPU slot of pool (slot_event) and starts in
// it the event of the current task in container cgid.
static __always_inline struct event *task_event(__u32 pool, __u32 kind, __u64 cgid, int *slot)
{
	return task_start(slot_event(pool, slot), kind, cgid);
}

// own_event is task_event for the preemptible programs: the task's own
// slot (task_slots), else a per-CPU one of their pool.
static __always_inline struct event *own_event(__u32 kind, __u64 cgid, int *slot)
{
	struct slot *s = bpf_task_storage_get(&task_slots, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return task_event(POOL_TASK, kind, cgid, slot);
	__builtin_memset(&s->ev, 0, sizeof(s->ev));
	*slot = TASK_SLOT;
	return task_start(&s->ev, kind, cgid);
}

struct pathbuf;
__attribute__((noinline)) int path_name(__u64 dv, __u64 mv, __u64 leaf, __u32 leaflen, struct pathbuf *pb);

// event_path puts into the event the path of the entry named leaf
// (leaflen bytes) in directory dentry dv on mount mv, or of dv itself
// (leaf 0), as path_name builds it in the event's slot; -1 when it
// cannot be named (callers that deny refuse then: the rules might deny
// it).
static __always_inline int event_path(struct event *ev, __u64 dv, __u64 mv, __u64 leaf, __u32 leaflen)
{
	struct pathbuf *buf = &((struct slot *)ev)->pb; // the event's slot's
	int pos = path_name(dv, mv, leaf, leaflen, buf);
	if (pos < 0)
		return -1;
	bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), &buf->b[pos & (PATH_MAX - 1)]);
	return 0;
}

// file_path is event_path for an open file.
static __always_inline int file_path(struct event *ev, struct file *f)
{
	return event_path(ev, (__u64)BPF_CORE_READ(f, f_path.dentry), (__u64)BPF_CORE_READ(f, f_path.mnt), 0, 0);
}

// exec_fill puts the executable's path (name), drift and the parent's
// comm into the event.
static __always_inline void exec_fill(struct event *ev, struct linux_binprm *bprm, const char *name)
{
	bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), name);

	// Drift: the file is not from the image's layers: it lives in the
	// overlay's upper layer (written or modified since the container
	// started) or on a tmpfs (including memfd).
	struct inode *ino = BPF_CORE_READ(bprm, file, f_inode);
	unsigned long magic = BPF_CORE_READ(ino, i_sb, s_magic);
	if (magic == OVERLAYFS_SUPER_MAGIC) {
		struct ovl_inode *oi = (void *)ino - bpf_core_field_offset(struct ovl_inode, vfs_inode);
		if (BPF_CORE_READ(oi, __upperdentry))
			ev->drift = 1;
	} else if (magic == TMPFS_MAGIC) {
		ev->drift = 1;
	}

	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	BPF_CORE_READ_STR_INTO(&ev->pcomm, t, real_parent, comm);
}

// sched_process_exec fires after the new image is in place and before it
// runs an instruction: a SIGKILL sent here kills it first.
// Arguments: (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm).
static __always_inline void exec_judge(struct bpf_raw_tracepoint_args *ctx, struct policy *p, struct event *ev);

SEC("raw_tracepoint/sched_process_exec")
int berth_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 cgid;
	struct policy *p = container_lookup(&exec_policy, &cgid);
	if (!p)
		return 0;
	int slot = 0;
	struct event *ev = task_event(POOL_TP, KIND_EXEC, cgid, &slot);
	if (!ev) {
		// No slot free: a kill or deny rule might match, and the
		// new image must not run unjudged.
		if (enforces(p))
			bpf_send_signal(SIGKILL);
		return 0;
	}
	exec_judge(ctx, p, ev);
	slot_release(slot);
	return 0;
}

// exec_judge fills in the event of an exec, judges it by the rules,
// kills and reports.
static __always_inline void exec_judge(struct bpf_raw_tracepoint_args *ctx, struct policy *p, struct event *ev)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx->args[2];
	exec_fill(ev, bprm, BPF_CORE_READ(bprm, filename));
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	unsigned long as = BPF_CORE_READ(t, mm, arg_start);
	unsigned long ae = BPF_CORE_READ(t, mm, arg_end);
	__u32 n = ae > as ? ae - as : 0;
	if (n > EV_ARGS - 1)
		n = EV_ARGS - 1;
	n &= EV_ARGS - 1; // for the verifier: a bound it can see
	if (n > 0 && bpf_probe_read_user(ev->args, n, (void *)as) == 0)
		ev->args_len = n;

	// Masked: a global function's result has no bounds the verifier
	// knows of; -1 (no rule) becomes 15, past the rules.
	__u32 r = (__u32)decide(p, ev) & 15;
	if (r >= MAX_RULES && p->nrules > 0) {
		// The name passed; the file's own path (an exec through a
		// symbolic link, /proc/self/fd/N, fexecve) is judged too, and
		// reported when a rule takes it.
		if (file_path(ev, BPF_CORE_READ(bprm, file)) == 0) {
			r = (__u32)decide(p, ev) & 15;
			if (r >= MAX_RULES)
				bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), BPF_CORE_READ(bprm, filename));
		}
	}
	if (r < MAX_RULES) {
		ev->rule = p->rules[r].id;
		ev->action = p->rules[r].action;
		// A deny rule matching here means the exec got past the LSM
		// program (a name or path it did not see): the process dies
		// instead, and the alert says kill.
		if (ev->action == ACT_DENY)
			ev->action = ACT_KILL;
		if (ev->action == ACT_KILL)
			bpf_send_signal(SIGKILL);
	}
	report(p, ev);
}

static __always_inline int connect_judge(struct bpf_sock_addr *ctx, int v6, struct policy *p, struct event *ev);

static __always_inline int on_connect(struct bpf_sock_addr *ctx, int v6)
{
	__u64 cgid;
	struct policy *p = container_lookup(&connect_policy, &cgid);
	if (!p)
		return 1;
	int slot = 0;
	struct event *ev = own_event(KIND_CONNECT, cgid, &slot);
	if (!ev)
		return !enforces(p); // no slot free: refused where a rule denies or kills
	int verdict = connect_judge(ctx, v6, p, ev);
	slot_release(slot);
	return verdict;
}

// connect_judge fills in the event of a connect (or a datagram sent),
// judges it by the rules, kills and reports: 1 to let it through, 0 to
// refuse it.
static __always_inline int connect_judge(struct bpf_sock_addr *ctx, int v6, struct policy *p, struct event *ev)
{
	ev->port = bpf_ntohs((__u16)ctx->user_port);
	ev->proto = ctx->protocol;
	if (v6) {
		ev->family = AF_INET6;
		__u32 w[4];
		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
		__builtin_memcpy(ev->addr, w, 16);
	} else {
		ev->family = AF_INET;
		__u32 ip = ctx->user_ip4;
		ev->addr[10] = 0xff;
		ev->addr[11] = 0xff;
		__builtin_memcpy(&ev->addr[12], &ip, 4);
	}
	int verdict = 1;
	// Masked: a global function's result has no bounds the verifier
	// knows of; -1 (no rule) becomes 15, past the rules.
	__u32 r = (__u32)decide(p, ev) & 15;
	if (r < MAX_RULES) {
		ev->rule = p->rules[r].id;
		ev->action = p->rules[r].action;
		if (ev->action == ACT_DENY)
			verdict = 0;
		else if (ev->action == ACT_KILL) {
			bpf_send_signal(SIGKILL);
			verdict = 0;
		}
	}
	report(p, ev);
	return verdict;
}

SEC("cgroup/connect4")
int berth_connect4(struct bpf_sock_addr *ctx) { return on_connect(ctx, 0); }

SEC("cgroup/connect6")
int berth_connect6(struct bpf_sock_addr *ctx) { return on_connect(ctx, 1); }

// A UDP datagram sent with a destination (sendto/sendmsg on a socket that
// never connected) reaches the network without a connect: the same rules
// judge it as a connect event of protocol udp, or an egress rule would be
// walked past with sendto.
SEC("cgroup/sendmsg4")
int berth_sendmsg4(struct bpf_sock_addr *ctx) { return on_connect(ctx, 0); }

SEC("cgroup/sendmsg6")
int berth_sendmsg6(struct bpf_sock_addr *ctx) { return on_connect(ctx, 1); }

// sys_args reads the first four system call arguments. Only the branch
// of the running architecture survives loading: the other's field reads
// are poisoned by CO-RE and never reached.
static __always_inline void sys_args(void *regs, __u64 *a)
{
	if (bpf_core_field_exists(struct pt_regs___x86, di)) {
		struct pt_regs___x86 *r = regs;
		a[0] = BPF_CORE_READ(r, di);
		a[1] = BPF_CORE_READ(r, si);
		a[2] = BPF_CORE_READ(r, dx);
		a[3] = BPF_CORE_READ(r, r10);
	} else if (bpf_core_field_exists(struct pt_regs___arm64, orig_x0)) {
		struct pt_regs___arm64 *r = regs;
		a[0] = BPF_CORE_READ(r, orig_x0);
		a[1] = BPF_CORE_READ(r, regs[1]);
		a[2] = BPF_CORE_READ(r, regs[2]);
		a[3] = BPF_CORE_READ(r, regs[3]);
	}
}

// sys_enter reports the system calls a container's alert rules watch;
// open-family calls only when they open for writing.
// Arguments: (struct pt_regs *regs, long id).
static __always_inline int sys_enter_fill(struct sys_policy *p, void *regs, long nr, struct event *ev);

SEC("raw_tracepoint/sys_enter")
int berth_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 cgid;
	struct sys_policy *p = container_lookup(&sys_policies, &cgid);
	if (!p)
		return 0;
	long nr = (long)ctx->args[1];
	if (nr < 0 || nr >= MAX_SYSCALL)
		return 0;
	if (!((p->report[(nr >> 6) & (MAX_SYSCALL / 64 - 1)] >> (nr & 63)) & 1))
		return 0;
	int slot = 0;
	struct event *ev = task_event(POOL_TP, KIND_SYSCALL, cgid, &slot);
	if (!ev)
		return 0;
	if (sys_enter_fill(p, (void *)ctx->args[0], nr, ev))
		emit(ev);
	slot_release(slot);
	return 0;
}

// sys_enter_fill fills in the event of system call nr at its entry: 1 to
// report it, 0 when it is an open for reading.
static __always_inline int sys_enter_fill(struct sys_policy *p, void *regs, long nr, struct event *ev)
{
	ev->nr = nr;
	sys_args(regs, ev->sargs);
	if (nr == p->nr_open || nr == p->nr_openat || nr == p->nr_openat2 || nr == p->nr_creat) {
		const char *path;
		__u64 flags;
		if (nr == p->nr_open) {
			path = (const char *)ev->sargs[0];
			flags = ev->sargs[1];
		} else if (nr == p->nr_creat) {
			path = (const char *)ev->sargs[0];
			flags = O_CREAT | O_TRUNC | 1;
		} else {
			path = (const char *)ev->sargs[1];
			flags = ev->sargs[2];
			if (nr == p->nr_openat2 && bpf_probe_read_user(&flags, sizeof(flags), (void *)ev->sargs[2]))
				flags = 0;
		}
		if ((flags & O_ACCMODE) == 0 && !(flags & (O_CREAT | O_TRUNC)))
			return 0; // read only
		ev->kind = KIND_OPEN;
		bpf_probe_read_user_str(ev->path, sizeof(ev->path), path);
	} else if (nr == p->nr_execve || nr == p->nr_execveat) {
		const char *path = (const char *)(nr == p->nr_execve ? ev->sargs[0] : ev->sargs[1]);
		ev->kind = KIND_EXEC_TRY;
		bpf_probe_read_user_str(ev->path, sizeof(ev->path), path);
	}
	return 1;
}

#define EPERM 1
#define EACCES 13

// sys_exit reports the calls of a container's seccomp deny rules that
// failed with EPERM or EACCES, with their arguments (the registers keep
// them: a refused call ran nothing), as KIND_SYSCALL with action deny.
// Arguments: (struct pt_regs *regs, long ret).
SEC("raw_tracepoint/sys_exit")
int berth_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	long ret = (long)ctx->args[1];
	if (ret != -EPERM && ret != -EACCES)
		return 0;
	__u64 cgid;
	struct sys_deny *p = container_lookup(&sys_denies, &cgid);
	if (!p)
		return 0;
	void *regs = (void *)ctx->args[0];
	long nr = -1;
	if (bpf_core_field_exists(struct pt_regs___x86, orig_ax)) {
		struct pt_regs___x86 *r = regs;
		nr = BPF_CORE_READ(r, orig_ax);
	} else if (bpf_core_field_exists(struct pt_regs___arm64, syscallno)) {
		struct pt_regs___arm64 *r = regs;
		nr = BPF_CORE_READ(r, syscallno);
	}
	if (nr < 0 || nr >= MAX_SYSCALL)
		return 0;
	if (!((p->calls[(nr >> 6) & (MAX_SYSCALL / 64 - 1)] >> (nr & 63)) & 1))
		return 0;
	int slot = 0;
	struct event *ev = task_event(POOL_TP, KIND_SYSCALL, cgid, &slot);
	if (!ev)
		return 0;
	ev->nr = nr;
	ev->action = ACT_DENY;
	sys_args(regs, ev->sargs);
	emit(ev);
	slot_release(slot);
	return 0;
}

#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3

// inet_sock_set_state reports an inbound TCP connection (SYN_RECV to
// ESTABLISHED: the handshake done, before accept) of a watched
// container. It runs in softirq, in no process's context: the container
// is the socket's cgroup (inherited from the listening socket), and the
// event names no process. Arguments: (struct sock *sk, int oldstate,
// int newstate).
SEC("raw_tracepoint/inet_sock_set_state")
int berth_accept(struct bpf_raw_tracepoint_args *ctx)
{
	if ((int)ctx->args[1] != TCP_SYN_RECV || (int)ctx->args[2] != TCP_ESTABLISHED)
		return 0;
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	if (!bpf_map_lookup_elem(&accept_watch, &cgid))
		return 0;
	int slot = 0;
	struct event *ev = slot_event(POOL_TP, &slot);
	if (!ev)
		return 0;
	ev->ts = bpf_ktime_get_boot_ns();
	ev->kind = KIND_ACCEPT;
	ev->cgid = cgid;
	ev->rule = -1;
	ev->proto = 6;
	ev->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->family = family;
	__u16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	ev->sargs[0] = bpf_ntohs(dport); // the peer's port
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&ev->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__u32 ip = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		ev->addr[10] = 0xff;
		ev->addr[11] = 0xff;
		__builtin_memcpy(&ev->addr[12], &ip, 4);
	}
	emit(ev);
	slot_release(slot);
	return 0;
}


// sched_process_exit fires in the exiting task, after its mm is gone (no
// executable, no argv: the comm stays). Only the last task of a thread
// group is reported: the process is gone. signal->live is the count of
// live threads, already decremented for this one (the group_dead
// argument of 6.16 and later says the same, but older kernels lack it).
// Arguments: (struct task_struct *p[, bool group_dead]).
SEC("raw_tracepoint/sched_process_exit")
int berth_exit(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *t = (struct task_struct *)ctx->args[0];
	if (BPF_CORE_READ(t, signal, live.counter) != 0)
		return 0;
	__u64 cgid;
	struct policy *p = container_lookup(&exit_policy, &cgid);
	if (!p)
		return 0;
	int slot = 0;
	struct event *ev = task_event(POOL_TP, KIND_EXIT, cgid, &slot);
	if (!ev)
		return 0;
	// A group exit (exit_group, a fatal signal) leaves its status in
	// the signal struct; a lone last thread's own is in exit_code.
	if (BPF_CORE_READ(t, signal, flags) & SIGNAL_GROUP_EXIT)
		ev->exit_code = BPF_CORE_READ(t, signal, group_exit_code);
	else
		ev->exit_code = BPF_CORE_READ(t, exit_code);
	// The wait status, split for the rules' atoms: the exit code (0 when
	// a signal killed it) where a port goes, the signal where a protocol.
	ev->port = (ev->exit_code >> 8) & 0xff;
	ev->proto = ev->exit_code & 0x7f;
	// Masked: a global function's result has no bounds the verifier
	// knows of; -1 (no rule) becomes 15, past the rules.
	__u32 r = (__u32)decide(p, ev) & 15;
	if (r < MAX_RULES) {
		ev->rule = p->rules[r].id;
		ev->action = p->rules[r].action;
	}
	report(p, ev);
	slot_release(slot);
	return 0;
}

// skb_container_lookup is container_lookup for a packet: the cgroup of
// the socket it is delivered to (for a SYN, the listening socket's), or
// its nearest ancestor with a policy.
static __always_inline void *skb_container_lookup(struct __sk_buff *skb, void *map, __u64 *cgid)
{
	__u64 cg = bpf_skb_cgroup_id(skb);
	void *p = bpf_map_lookup_elem(map, &cg);
	if (p) {
		*cgid = cg;
		return p;
	}
	for (int level = 1; level < 8; level++) {
		__u64 a = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!a || a == cg)
			break;
		p = bpf_map_lookup_elem(map, &a);
		if (p) {
			*cgid = a;
			return p;
		}
	}
	return 0;
}

#define IPPROTO_TCP 6
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_DSTOPTS 60
#define MAX_EXT 6
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

// berth_ingress drops the inbound TCP SYNs (SYN without ACK: a new
// connection, not a reply) that an accept deny rule matches, so the
// handshake never completes and accept(2) never returns the connection.
// Every other packet passes. Attached to the cgroups of containers with
// accept deny rules only; the packet starts at its IP header, reassembled
// (the hook runs at the socket). IPv4 with options is parsed, and IPv6
// with up to MAX_EXT extension headers (hop-by-hop, routing, fragment,
// destination options, AH; more, or ESP, and the packet passes).
// Returns 1 to pass, 0 to drop.
SEC("cgroup_skb/ingress")
int berth_ingress(struct __sk_buff *skb)
{
	__u64 cgid;
	struct policy *p = skb_container_lookup(skb, &accept_policy, &cgid);
	if (!p)
		return 1;
	__u8 vb;
	if (bpf_skb_load_bytes(skb, 0, &vb, 1))
		return 1;
	__u32 toff;
	__u8 addr[16] = {};
	__u16 family;
	if ((vb >> 4) == 4) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return 1;
		toff = (h[0] & 0xf) * 4;
		if (toff < 20 || h[9] != IPPROTO_TCP || ((h[6] & 0x1f) | h[7]))
			return 1;
		family = AF_INET;
		addr[10] = 0xff;
		addr[11] = 0xff;
		__builtin_memcpy(&addr[12], &h[12], 4);
	} else if ((vb >> 4) == 6) {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return 1;
		// Walk the extension headers a peer may put before TCP (a
		// SYN behind them must not slip past the rule); more than
		// MAX_EXT of them, or one of another kind: the packet passes.
		__u8 next = h[6];
		toff = 40;
		for (int i = 0; i < MAX_EXT; i++) {
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS && next != IPPROTO_FRAGMENT &&
			    next != IPPROTO_AH)
				break;
			__u8 eh[2];
			if (bpf_skb_load_bytes(skb, toff, eh, sizeof(eh)))
				return 1;
			if (next == IPPROTO_FRAGMENT)
				toff += 8;
			else if (next == IPPROTO_AH)
				toff += ((__u32)eh[1] + 2) * 4;
			else
				toff += ((__u32)eh[1] + 1) * 8;
			next = eh[0];
		}
		if (next != IPPROTO_TCP)
			return 1;
		family = AF_INET6;
		__builtin_memcpy(addr, &h[8], 16);
	} else {
		return 1;
	}
	__u8 th[14];
	if (bpf_skb_load_bytes(skb, toff, th, sizeof(th)))
		return 1;
	if ((th[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return 1;
	int slot = 0;
	struct event *ev = slot_event(POOL_SOFTIRQ, &slot);
	if (!ev)
		return !enforces(p); // no slot free: dropped where a rule denies
	ev->ts = bpf_ktime_get_boot_ns();
	ev->kind = KIND_ACCEPT;
	ev->cgid = cgid;
	ev->rule = -1;
	ev->proto = IPPROTO_TCP;
	ev->family = family;
	__builtin_memcpy(ev->addr, addr, 16);
	ev->port = ((__u16)th[2] << 8) | th[3]; // the local port
	ev->sargs[0] = ((__u16)th[0] << 8) | th[1]; // the peer's
	int verdict = 1;
	// Masked: a global function's result has no bounds the verifier
	// knows of; -1 (no rule) becomes 15, past the rules.
	__u32 r = (__u32)decide(p, ev) & 15;
	if (r < MAX_RULES) {
		ev->rule = p->rules[r].id;
		ev->action = p->rules[r].action;
		if (ev->action == ACT_DENY)
			verdict = 0;
	}
	report(p, ev);
	slot_release(slot);
	return verdict;
}

// The BPF LSM programs below deny in the kernel, before the operation
// happens, where the kernel runs BPF LSM programs (CONFIG_BPF_LSM and bpf
// among the active LSMs); user space loads them only there. Each first
// keeps an earlier program's denial (ret): BPF LSM programs of other
// products share the hook.
#define FMODE_WRITE 0x2

// lsm_deny returns the index of the first rule that matches when it is a
// deny rule (filling the event's rule and action), else -1: a kill or
// alert rule that comes first is the tracepoint's to carry out.
static __always_inline int lsm_deny(struct policy *p, struct event *ev)
{
	// Masked: a global function's result has no bounds the verifier
	// knows of; -1 (no rule) becomes 15, past the rules.
	__u32 r = (__u32)decide(p, ev) & 15;
	if (r >= MAX_RULES || p->rules[r].action != ACT_DENY)
		return -1;
	ev->rule = p->rules[r].id;
	ev->action = ACT_DENY;
	return r;
}

// bprm_check_security runs for each binary an exec loads (a script, then
// its interpreter: interp names the one being checked) before the old
// image is gone: a denial makes execve fail with EACCES and the process
// goes on. The rules judge the name the binary is loaded by, then the
// file's own path in the container (path_name: symbolic links resolved,
// a deleted file by its last path): either may deny.
// Arguments: (struct linux_binprm *bprm, int ret).
static __always_inline int exec_check(struct policy *p, struct event *ev, struct linux_binprm *bprm);

SEC("lsm/bprm_check_security")
int BPF_PROG(berth_exec_check, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	__u64 cgid;
	struct policy *p = container_lookup(&exec_policy, &cgid);
	if (!p || !(p->flags & POLICY_DENY))
		return 0;
	int slot = 0;
	struct event *ev = own_event(KIND_EXEC, cgid, &slot);
	if (!ev)
		return -EACCES; // no slot free: refused, as the rules might deny it
	int r = exec_check(p, ev, bprm);
	slot_release(slot);
	return r;
}

// exec_check judges the binary an exec loads: 0, or -EACCES.
static __always_inline int exec_check(struct policy *p, struct event *ev, struct linux_binprm *bprm)
{
	exec_fill(ev, bprm, BPF_CORE_READ(bprm, interp));
	if (lsm_deny(p, ev) < 0) {
		// The name it was run by passed; the file's own path may not
		// (an exec of /proc/self/fd/N or /dev/fd/N, fexecve, a link
		// made by another name): judged too.
		if (file_path(ev, BPF_CORE_READ(bprm, file)) < 0)
			return -EACCES; // unnameable: refused, as the rules might deny it
		if (lsm_deny(p, ev) < 0)
			return 0;
	}
	emit(ev);
	return -EACCES;
}

// file_open runs for every open after the file is found (or made) and
// before a descriptor exists: an open for writing that a rule denies
// fails with EACCES. The path is the file's in the container (path_name).
// Arguments: (struct file *file, int ret).
static __always_inline int open_check(struct policy *p, struct event *ev, struct file *file);

SEC("lsm/file_open")
int BPF_PROG(berth_file_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	if (!(file->f_mode & FMODE_WRITE))
		return 0;
	__u64 cgid;
	struct policy *p = container_lookup(&open_policy, &cgid);
	if (!p)
		return 0;
	int slot = 0;
	struct event *ev = own_event(KIND_OPEN, cgid, &slot);
	if (!ev)
		return -EACCES; // no slot free: refused, as the rules might deny it
	int r = open_check(p, ev, file);
	slot_release(slot);
	return r;
}

// open_check judges an open for writing: 0, or -EACCES.
static __always_inline int open_check(struct policy *p, struct event *ev, struct file *file)
{
	// A path that cannot be named (deeper than MAX_DEPTH) cannot be
	// judged: refused, as the rules might deny it.
	if (file_path(ev, file) < 0)
		return -EACCES;
	if (lsm_deny(p, ev) < 0)
		return 0;
	emit(ev);
	return -EACCES;
}

// berth_lsm_probe tells user space whether the kernel runs BPF LSM
// programs: loaded and attached to file_open, it counts the opens of the
// probing process, which then opens a file. A kernel can load and attach
// LSM programs and never run them (bpf not among the active LSMs).
SEC("lsm/file_open")
int BPF_PROG(berth_lsm_probe, struct file *file, int ret)
{
	__u32 k = 0;
	__u64 *want = bpf_map_lookup_elem(&lsm_probe, &k);
	if (want && *want == bpf_get_current_pid_tgid() >> 32) {
		k = 1;
		__u64 *hits = bpf_map_lookup_elem(&lsm_probe, &k);
		if (hits)
			__sync_fetch_and_add(hits, 1);
	}
	return ret;
}

// The path hooks below refuse the changes to a directory's entries that
// an open for writing does not cover (a file made by open(O_CREAT) or
// mknod, a directory made or removed, an entry removed, renamed or
// linked, a truncate), under the open deny rules: the same rules as
// file_open, judged on the path of the entry made, removed or changed,
// which path_name builds.
#define MAX_DEPTH 48

// path_name writes the path of the entry named leaf (leaflen bytes) in
// directory dentry dv on mount mv (or of dv itself, leaf 0) into pb from
// the end (below PATH_MAX) and returns where it starts, or -1 when it is
// deeper than MAX_DEPTH or a name is too long (not judged: refused). The
// path goes up to the root of the mount namespace, not the task's root:
// after the runtime's pivot_root that is the container's root, and a
// chroot inside the container cannot rename what it judges (bpf_d_path
// stops at the task's root). A deleted file keeps its last path (no
// " (deleted)" mark). A global function: the verifier checks its loop
// once. The kernel pointers come as numbers (a global function takes no
// kernel pointers) and are read through bpf_probe_read_kernel.
__attribute__((noinline)) int path_name(__u64 dv, __u64 mv, __u64 leaf, __u32 leaflen, struct pathbuf *pb)
{
	struct dentry *d = (struct dentry *)dv;
	struct vfsmount *m = (struct vfsmount *)mv;
	if (!d || !m || !pb)
		return -1;
	char *buf = pb->b;
	struct mount *mnt = (void *)m - bpf_core_field_offset(struct mount, mnt);
	__u32 pos = PATH_MAX - 1;
	buf[PATH_MAX - 1] = 0;
	if (leaf) {
		if (leaflen > NAME_MAX)
			return -1;
		pos -= leaflen + 1;
		barrier_var(pos);
		pos &= PATH_MAX - 1;
		buf[pos] = '/';
		// The masks are for the verifier; the barriers keep clang from
		// dropping masks it can prove change nothing.
		barrier_var(leaflen);
		if (bpf_probe_read_kernel(&buf[(pos + 1) & (PATH_MAX - 1)], leaflen & NAME_MAX, (void *)leaf))
			return -1;
	}
	for (int i = 0; i < MAX_DEPTH; i++) {
		struct dentry *parent = BPF_CORE_READ(d, d_parent);
		if (d == BPF_CORE_READ(m, mnt_root) || d == parent) {
			// The top of a mount: on to where it is mounted.
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt)
				goto done; // the top of the mount namespace
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			m = (void *)up + bpf_core_field_offset(struct mount, mnt);
			continue;
		}
		__u32 len = BPF_CORE_READ(d, d_name.len);
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		if (len > NAME_MAX || len + 1 > pos)
			return -1;
		pos -= len + 1;
		barrier_var(pos);
		pos &= PATH_MAX - 1;
		buf[pos] = '/';
		barrier_var(len);
		if (bpf_probe_read_kernel(&buf[(pos + 1) & (PATH_MAX - 1)], len & NAME_MAX, name))
			return -1;
		d = parent;
	}
	return -1;
done:
	if (pos == PATH_MAX - 1) {
		pos = PATH_MAX - 2;
		buf[pos] = '/';
	}
	return pos;
}

// atom_covers says whether atom a is a path (== or prefix) below the
// event's path, whose length is n. A global function, like atom_true.
__attribute__((noinline)) int atom_covers(const struct atom *a, const struct event *ev, __u32 n)
{
	if (!a || !ev || n == 0 || n >= ATOM_DATA - 1)
		return 0;
	if ((a->kind != ATOM_PATH_EQ && a->kind != ATOM_PATH_PREFIX) || a->len <= n || a->len > ATOM_DATA)
		return 0;
	barrier_var(n); // keep the mask below: clang would drop it, the verifier needs it
	if (a->data[n & (ATOM_DATA - 1)] != '/')
		return 0;
	for (__u32 j = 0; j < ATOM_DATA; j++) {
		if (j >= n)
			break;
		if (a->data[j] != ev->path[j])
			return 0;
	}
	return 1;
}

// covering_rule returns the first deny rule with a path (== or prefix)
// below the event's path, or -1: renaming that path, or making it a
// symbolic link, would move what the rule protects (rename /etc/app to
// /etc/x, write /etc/x/conf, rename it back). Negated paths count too:
// refusing more is the safe side. A global function: the verifier
// checks its loops once.
__attribute__((noinline)) int covering_rule(const struct policy *p, const struct event *ev)
{
	if (!p || !ev)
		return -1;
	__u32 n = 0;
	for (; n < ATOM_DATA; n++) {
		if (ev->path[n] == 0)
			break;
	}
	for (__u32 r = 0; r < MAX_RULES; r++) {
		if (r >= p->nrules)
			break;
		const struct krule *k = &p->rules[r];
		if (k->action != ACT_DENY)
			continue;
		int hit = 0;
		for (__u32 i = 0; i < MAX_ATOMS; i++) {
			if (i >= k->natoms)
				break;
			hit |= atom_covers(&k->atoms[i], ev, n);
		}
		if (hit)
			return r;
	}
	return -1;
}

// path_deny_at judges a change to the entry leaf in directory dentry
// dirv on mount mv, or to dirv itself when leaf is 0, under the open deny
// rules of the current task's container: 0 to let it happen, or -EACCES.
// With covers, a path above a rule's path is refused too (covering_rule).
static __always_inline int path_check(struct policy *p, struct event *ev, __u64 dirv, __u64 mv, struct dentry *leaf, int covers);

static __always_inline int path_deny_at(__u64 dirv, __u64 mv, struct dentry *leaf, int covers)
{
	__u64 cgid;
	struct policy *p = container_lookup(&open_policy, &cgid);
	if (!p)
		return 0;
	int slot = 0;
	struct event *ev = own_event(KIND_OPEN, cgid, &slot);
	if (!ev)
		return -EACCES; // no slot free: refused, as the rules might deny it
	int r = path_check(p, ev, dirv, mv, leaf, covers);
	slot_release(slot);
	return r;
}

// path_check is path_deny_at's judgement, in the event ev.
static __always_inline int path_check(struct policy *p, struct event *ev, __u64 dirv, __u64 mv, struct dentry *leaf, int covers)
{
	__u64 name = 0;
	__u32 len = 0;
	if (leaf) {
		name = (__u64)BPF_CORE_READ(leaf, d_name.name);
		len = BPF_CORE_READ(leaf, d_name.len);
	}
	if (event_path(ev, dirv, mv, name, len) < 0)
		return -EACCES;
	if (lsm_deny(p, ev) < 0) {
		if (!covers)
			return 0;
		__u32 r = (__u32)covering_rule(p, ev) & 15; // masked: see decide's callers
		if (r >= MAX_RULES)
			return 0;
		ev->rule = p->rules[r].id;
		ev->action = ACT_DENY;
	}
	emit(ev);
	return -EACCES;
}

// path_deny is path_deny_at for an entry of the directory at dir.
static __always_inline int path_deny(const struct path *dir, struct dentry *leaf)
{
	return path_deny_at((__u64)BPF_CORE_READ(dir, dentry), (__u64)BPF_CORE_READ(dir, mnt), leaf, 0);
}

// path_deny_covering is path_deny that also refuses paths above a rule's.
static __always_inline int path_deny_covering(const struct path *dir, struct dentry *leaf)
{
	return path_deny_at((__u64)BPF_CORE_READ(dir, dentry), (__u64)BPF_CORE_READ(dir, mnt), leaf, 1);
}

SEC("lsm/path_mknod")
int BPF_PROG(berth_path_mknod, const struct path *dir, struct dentry *dentry, unsigned short mode, unsigned int dev, int ret)
{
	if (ret)
		return ret;
	return path_deny(dir, dentry);
}

SEC("lsm/path_mkdir")
int BPF_PROG(berth_path_mkdir, const struct path *dir, struct dentry *dentry, unsigned short mode, int ret)
{
	if (ret)
		return ret;
	return path_deny(dir, dentry);
}

SEC("lsm/path_unlink")
int BPF_PROG(berth_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return path_deny(dir, dentry);
}

SEC("lsm/path_rmdir")
int BPF_PROG(berth_path_rmdir, const struct path *dir, struct dentry *dentry, int ret)
{
	if (ret)
		return ret;
	return path_deny(dir, dentry);
}

SEC("lsm/path_symlink")
int BPF_PROG(berth_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name, int ret)
{
	if (ret)
		return ret;
	return path_deny_covering(dir, dentry);
}

// A hard link judges both names: a new name outside a denied path for a
// file under it would let writes through the new name. Both are on
// new_dir's mount (a link across mounts fails with EXDEV first).
SEC("lsm/path_link")
int BPF_PROG(berth_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry, int ret)
{
	if (ret)
		return ret;
	int r = path_deny_at((__u64)BPF_CORE_READ(old_dentry, d_parent), (__u64)BPF_CORE_READ(new_dir, mnt), old_dentry, 0);
	if (r)
		return r;
	return path_deny(new_dir, new_dentry);
}

// A rename changes both entries: either under a denied path, or above
// one (covering_rule), refuses it.
SEC("lsm/path_rename")
int BPF_PROG(berth_path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags, int ret)
{
	if (ret)
		return ret;
	int r = path_deny_covering(old_dir, old_dentry);
	if (r)
		return r;
	return path_deny_covering(new_dir, new_dentry);
}

SEC("lsm/path_truncate")
int BPF_PROG(berth_path_truncate, const struct path *path, int ret)
{
	if (ret)
		return ret;
	return path_deny(path, 0);
}
