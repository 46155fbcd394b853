// See prespawn.c.
#include <stddef.h>

extern int berth_pre_sock, berth_pre_pid, berth_pre_bin;
extern unsigned long berth_pre_flags;

// berth_pre_scan reads the namespaces of a config.json as CLONE_NEW*
// flags; 0 when it does not follow the document.
int berth_pre_scan(const char *data, size_t len, unsigned long *flags);
