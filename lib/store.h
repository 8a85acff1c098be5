/*
 * store - the SQLite files of saslgate: policy.db (written only by saslgatectl,
 * read-only for the daemons) and activity.db (written by the daemons). Opening,
 * schema migrations (compiled in from the schema directory), transactions, change
 * detection, the admin audit trail and the integrity check.
 *
 * Both databases run in WAL mode with a busy timeout. A connection must be
 * used by one thread at a time: it is opened without SQLite's mutexes.
 */
#ifndef SASLGATE_STORE_H
#define SASLGATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "util.h"

#define STORE_DEFAULT_DIR "/var/lib/saslgate"
#define STORE_POLICY_DB   "policy.db"
#define STORE_ACTIVITY_DB "activity.db"
/* The change notice: an 8-byte counter that saslgatectl's connection bumps
 * after every commit to policy.db, so that daemons learn of a change with one
 * pread() instead of a SQLite read transaction per request. */
#define STORE_POLICY_NOTICE   "policy.notice"
#define STORE_BUSY_TIMEOUT_MS 5000

/* The store directory: the argument if not NULL, else $SASLGATE_DIR, else
 * STORE_DEFAULT_DIR. */
const char *store_dir(const char *arg);

/* dir + "/" + file into buf; 0, or -1 with err if it does not fit. */
int store_path(const char *dir, const char *file, char *buf, size_t len, struct sg_err *err);

/* The newest schema version each database knows. */
int store_policy_schema_version(void);
int store_activity_schema_version(void);

/* policy.db for saslgatectl: create = 1 creates the directory (0750) and the
 * file and refuses an existing policy.db; create = 0 requires it to exist.
 * Migrates an older schema. Every commit on the connection then bumps the
 * change notice (STORE_POLICY_NOTICE). One admin connection per process.
 * Refuses (before SQLite reads them, and again once it holds them open) a
 * policy.db-wal, policy.db-shm or policy.notice that is not a regular file
 * of policy.db's owner (for create, of the effective user): another account
 * could have written changes into it. 0 or -1 with err. */
int store_open_admin(const char *dir, int create, sqlite3 **db, struct sg_err *err);

/* policy.db for a daemon: read-only (SQLITE_OPEN_READONLY); refuses a schema
 * newer or older than this program's. A process other than root and
 * policy.db's owner never creates policy.db-wal or policy.db-shm (they
 * would be its own, and the owner would trust them): it needs them to exist
 * and fails, naming the fix, when they do not. 0 or -1 with err. */
int store_open_readonly(const char *dir, sqlite3 **db, struct sg_err *err);

/* activity.db: created and migrated if needed. readonly = 1 for saslgatectl's
 * reports (missing file is an error then). 0 or -1 with err. */
int store_open_activity(const char *dir, int readonly, sqlite3 **db, struct sg_err *err);

/* Closes (NULL-safe) and sets *db to NULL. */
void store_close(sqlite3 **db);

/* Reads the change notice counter from an open descriptor of
 * STORE_POLICY_NOTICE: 0 and the value, or -1 (short or failed read). */
int store_notice_read(int fd, uint64_t *value);

/* PRAGMA data_version of this connection: changes when another connection
 * commits. 0 or -1 with err. */
int store_data_version(sqlite3 *db, int64_t *version, struct sg_err *err);

/* Runs SQL without results. 0 or -1 with err (SQLite's message). */
int store_exec(sqlite3 *db, const char *sql, struct sg_err *err);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. rollback never fails visibly. */
int store_begin(sqlite3 *db, struct sg_err *err);
int store_commit(sqlite3 *db, struct sg_err *err);
void store_rollback(sqlite3 *db);

/* Inside an admin transaction: records who changed what (the actor is
 * $SUDO_USER, else the login name of the real uid), increments the policy
 * generation, and stamps the time. before/after are JSON texts or NULL.
 * 0 or -1 with err. */
int store_audit(sqlite3 *db, const char *action, const char *object, const char *before_json,
                const char *after_json, struct sg_err *err);

/* The actor recorded in the audit trail and as exception creator. */
const char *store_actor(void);

/* settings table of policy.db: reads key into buf (1 found, 0 absent, -1 error);
 * writes it (inside a transaction). */
int store_setting_get(sqlite3 *db, const char *key, char *buf, size_t len, struct sg_err *err);
int store_setting_set(sqlite3 *db, const char *key, const char *value, struct sg_err *err);

/* The policy generation (settings.generation); -1 on error. */
int64_t store_generation(sqlite3 *db);

/* policy.db: the exceptions active at now (no expiry, or a later one), and
 * of those the ones expiring within horizon seconds. 0, or -1 with err
 * (SQLite's message). */
int store_exception_counts(sqlite3 *db, int64_t now, int64_t horizon, int64_t *active,
                           int64_t *expiring, struct sg_err *err);

/* Schema version recorded in the file (PRAGMA user_version); -1 on error. */
int store_schema_version(sqlite3 *db);

/* PRAGMA integrity_check and foreign_key_check: 0 if clean; -1 with the first
 * problem in err. */
int store_check(sqlite3 *db, struct sg_err *err);

#endif
