#ifndef NSGROUP_CPOSIX_H
#define NSGROUP_CPOSIX_H

/* The C side of the POSIX layer: raw system calls glibc lacks or Swift cannot
 * see, descriptor passing and peer credentials, pseudo-terminals, a clone3
 * straight into a cgroup. ns_utils.h is for the C files only (it is not part
 * of the module Swift sees). */
#include "ns_sys.h"
#include "ns_fdpass.h"
#include "ns_pty.h"
#include "ns_cgroup.h"

#endif
