/*
 * daemon - process plumbing shared by the two daemons: detaching, pid files,
 * dropping privileges after binding.
 */
#ifndef SASLGATE_DAEMON_H
#define SASLGATE_DAEMON_H

#include <sys/types.h>

#include "util.h"

/* Forks into the background, starts a new session, chdir("/"), redirects stdio to
 * /dev/null. The parent exits 0. 0 in the child, or -1 with err. */
int daemon_detach(struct sg_err *err);

/* Writes the pid to path (O_EXCL after removing a stale file whose pid is not
 * running); refuses if another live process holds it. 0 or -1 with err. */
int daemon_pidfile_write(const char *path, struct sg_err *err);
/* Removes the pid file if it holds our pid. */
void daemon_pidfile_remove(const char *path);

/* Looks up user and group (group NULL: the user's primary group). */
int daemon_lookup_ids(const char *user, const char *group, uid_t *uid, gid_t *gid,
                      struct sg_err *err);

/* Drops to user/group (setgroups, setgid, setuid, then verifies it cannot regain
 * root). user NULL or "": no change, but logs a warning if running as root.
 * 0 or -1 with err. */
int daemon_drop_privileges(const char *user, const char *group, struct sg_err *err);

/* Checks, with the effective ids (call it after dropping privileges), that the
 * daemon can work in the store directory dir: it creates activity.db there,
 * and SQLite's WAL mode makes even a read-only reader of policy.db create or
 * write policy.db-shm and policy.db-wal next to it. 0, or -1 with a reason
 * that names the directory, the user and the fix. */
int daemon_check_store_dir(const char *dir, struct sg_err *err);

#endif
