// See prespawn.c.
#include <stddef.h>

extern int berth_pre_sock, berth_pre_pid, berth_pre_bin;
extern unsigned long berth_pre_flags;
extern char *berth_self_line;
extern int berth_self_kind, berth_self_pid;

// berth_pre_scan reads the namespaces of a config.json as CLONE_NEW*
// flags; 0 when it does not follow the document.
int berth_pre_scan(const char *data, size_t len, unsigned long *flags);

// berth_pre_plain says whether a config.json looks like one the init can
// create itself (a guess; the init decides).
int berth_pre_plain(const char *data, size_t len);
