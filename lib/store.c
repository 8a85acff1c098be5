/*
 * store - opening policy.db and activity.db, migrations, transactions, change
 * detection and the audit trail (see store.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "schema_sql.h"
#include "store.h"

const char *store_dir(const char *arg)
{
	const char *env;

	if (arg != NULL && *arg != '\0')
		return arg;
	env = getenv("SASLGATE_DIR");
	if (env != NULL && *env != '\0')
		return env;
	return STORE_DEFAULT_DIR;
}

int store_path(const char *dir, const char *file, char *buf, size_t len, struct sg_err *err)
{
	if (sg_snprintf(buf, len, "%s/%s", dir, file) < 0)
		return sg_err_set(err, "path too long: %s/%s", dir, file);
	return 0;
}

static int migration_count(const char *const *migrations)
{
	int n = 0;

	while (migrations[n] != NULL)
		n++;
	return n;
}

int store_policy_schema_version(void)
{
	return migration_count(schema_policy_migrations);
}

int store_activity_schema_version(void)
{
	return migration_count(schema_activity_migrations);
}

int store_exec(sqlite3 *db, const char *sql, struct sg_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sg_err_set(err, "%s", msg != NULL ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int store_schema_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Brings db from its recorded version to the newest, one transaction per step. */
static int migrate(sqlite3 *db, const char *const *migrations, const char *what, struct sg_err *err)
{
	int newest = migration_count(migrations);
	int v = store_schema_version(db);
	char sql[64];

	if (v < 0)
		return sg_err_set(err, "%s: cannot read schema version: %s", what,
		                  sqlite3_errmsg(db));
	if (v > newest)
		return sg_err_set(err, "%s: schema version %d is newer than this program's (%d)",
		                  what, v, newest);
	for (; v < newest; v++) {
		if (store_exec(db, "BEGIN IMMEDIATE", err) < 0)
			return -1;
		/* Another process may have migrated while we waited for the lock. */
		if (store_schema_version(db) > v) {
			store_exec(db, "COMMIT", NULL);
			continue;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (store_exec(db, migrations[v], err) < 0 || store_exec(db, sql, err) < 0) {
			store_rollback(db);
			return -1;
		}
		if (store_exec(db, "COMMIT", err) < 0) {
			store_rollback(db);
			return -1;
		}
	}
	return 0;
}

/* Every connection is used by one thread at a time (a daemon's writer, the
 * source under its lock, saslgatectl), so none needs SQLite's per-call
 * mutexes. */
static int open_file_as(const char *path, const char *name, int flags, const char *vfs,
                        sqlite3 **db, struct sg_err *err)
{
	*db = NULL;
	if (sqlite3_open_v2(name, db, flags | SQLITE_OPEN_NOMUTEX, vfs) != SQLITE_OK) {
		sg_err_set(err, "%s: %s", path,
		           *db != NULL ? sqlite3_errmsg(*db) : "cannot allocate a connection");
		store_close(db);
		return -1;
	}
	sqlite3_busy_timeout(*db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(*db, 1);
	return 0;
}

static int open_file(const char *path, int flags, sqlite3 **db, struct sg_err *err)
{
	return open_file_as(path, path, flags, NULL, db, err);
}

/* "name (uid N)", or "uid N" for a uid without a name. */
static void user_label(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *found = NULL;
	char scratch[1024];

	if (getpwuid_r(uid, &pw, scratch, sizeof(scratch), &found) == 0 && found != NULL)
		sg_snprintf(buf, len, "%s (uid %u)", found->pw_name, (unsigned)uid);
	else
		sg_snprintf(buf, len, "uid %u", (unsigned)uid);
}

/*
 * The files beside policy.db that its owner trusts as much as policy.db
 * itself: SQLite reads the WAL's frames and checkpoints them into policy.db,
 * and saslgatectl writes the notice. Each one that exists must be a regular
 * file of owner, policy.db's owner; 0, or -1 with err naming the file.
 */
static const char *const companions[] = {STORE_POLICY_DB "-wal", STORE_POLICY_DB "-shm",
                                         STORE_POLICY_NOTICE};

static int companions_check(const char *dir, uid_t owner, struct sg_err *err)
{
	char path[4096], who[128], whose[128];
	struct stat sb;

	for (size_t i = 0; i < sizeof(companions) / sizeof(companions[0]); i++) {
		if (store_path(dir, companions[i], path, sizeof(path), err) < 0)
			return -1;
		if (lstat(path, &sb) < 0) {
			if (errno == ENOENT)
				continue;
			return sg_err_set(err, "%s: %s", path, strerror(errno));
		}
		if (!S_ISREG(sb.st_mode))
			return sg_err_set(err,
			                  "%s is not a regular file; refusing to use the store "
			                  "(remove it: saslgatectl makes a new one)",
			                  path);
		if (sb.st_uid == owner)
			continue;
		user_label(sb.st_uid, who, sizeof(who));
		user_label(owner, whose, sizeof(whose));
		return sg_err_set(err,
		                  "%s belongs to %s, not to %s, the owner of %s: that account "
		                  "could have written changes into it; refusing to use the store. "
		                  "Stop the daemons, inspect it and remove it "
		                  "(saslgatectl makes a new one)",
		                  path, who, whose, STORE_POLICY_DB);
	}
	return 0;
}

/*
 * A process that does not own policy.db (a daemon after dropping its
 * privileges, a monitoring account) must not create the -wal and -shm files:
 * they would be its own, and policy.db's owner would read and checkpoint
 * them. This VFS is the default one, except that it opens a WAL file without
 * O_CREAT (and read-only); the "readonly_shm" URI parameter does the same
 * for -shm. Root needs none of it: SQLite gives what root creates to the
 * owner of the database.
 */
#define GUARDED_VFS "saslgate-guarded"
static sqlite3_vfs guarded_vfs;
static sqlite3_vfs *guarded_base;
static pthread_once_t guarded_once = PTHREAD_ONCE_INIT;

static int guarded_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                        int *out_flags)
{
	(void)vfs;
	if (flags & SQLITE_OPEN_WAL)
		flags =
		    (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
	return guarded_base->xOpen(guarded_base, name, file, flags, out_flags);
}

static void guarded_register(void)
{
	sqlite3_vfs *base = sqlite3_vfs_find(NULL);

	if (base == NULL)
		return;
	guarded_vfs = *base;
	guarded_vfs.pNext = NULL;
	guarded_vfs.zName = GUARDED_VFS;
	guarded_vfs.xOpen = guarded_open;
	guarded_base = base;
	if (sqlite3_vfs_register(&guarded_vfs, 0) != SQLITE_OK)
		guarded_base = NULL;
}

/* "file:PATH?mode=ro&readonly_shm=1", PATH percent-encoded. */
static int guarded_uri(const char *path, char *buf, size_t len, struct sg_err *err)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char query[] = "?mode=ro&readonly_shm=1";
	size_t n = 5;

	if (len < n + sizeof(query))
		return sg_err_set(err, "path too long: %s", path);
	memcpy(buf, "file:", n);
	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		            (*p >= '0' && *p <= '9') || strchr("/-._~", *p) != NULL;

		if (n + (plain ? 1 : 3) + sizeof(query) > len)
			return sg_err_set(err, "path too long: %s", path);
		if (plain) {
			buf[n++] = (char)*p;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		}
	}
	memcpy(buf + n, query, sizeof(query));
	return 0;
}

/* policy.db opened read-only by a process that does not own it: the WAL
 * files must be there already, made by the owner. */
static int open_guarded(const char *dir, const char *path, uid_t owner, sqlite3 **db,
                        struct sg_err *err)
{
	char uri[8192], file[4096], me[128], whose[128];
	struct stat sb;

	*db = NULL;
	pthread_once(&guarded_once, guarded_register);
	if (guarded_base == NULL)
		return sg_err_set(err, "%s: cannot set up SQLite's file layer", path);
	for (size_t i = 0; i < 2; i++) { /* -wal, -shm */
		if (store_path(dir, companions[i], file, sizeof(file), err) < 0)
			return -1;
		if (lstat(file, &sb) == 0)
			continue;
		user_label(geteuid(), me, sizeof(me));
		user_label(owner, whose, sizeof(whose));
		return sg_err_set(err,
		                  "%s is missing: this process (%s) does not own %s and does "
		                  "not make it; run \"saslgatectl check\" as %s to recreate it",
		                  file, me, STORE_POLICY_DB, whose);
	}
	if (guarded_uri(path, uri, sizeof(uri), err) < 0)
		return -1;
	return open_file_as(path, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, GUARDED_VFS, db,
	                    err);
}

/* Settings every read-write connection needs: WAL, foreign keys. */
static int configure_rw(sqlite3 *db, const char *path, struct sg_err *err)
{
	struct sg_err e;

	if (store_exec(db, "PRAGMA journal_mode=WAL", &e) < 0 ||
	    store_exec(db, "PRAGMA foreign_keys=ON", &e) < 0 ||
	    store_exec(db, "PRAGMA synchronous=NORMAL", &e) < 0)
		return sg_err_set(err, "%s: %s", path, e.text);
	return 0;
}

/* The notice file of the admin connection of this process (saslgatectl opens
 * one) and the owner it must have, policy.db's; set by store_open_admin, used
 * by the WAL hook. */
static char notice_path[4096];
static uid_t notice_owner;

int store_notice_read(int fd, uint64_t *value)
{
	unsigned char b[8];

	if (pread(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	*value = 0;
	for (int i = 0; i < 8; i++)
		*value = *value << 8 | b[i];
	return 0;
}

/* Increments the counter under an exclusive lock (two saslgatectl processes
 * must not write the same value). A failure is reported but not fatal: the
 * daemons also check the store once a second. */
static void notice_bump(const char *path)
{
	unsigned char b[8];
	uint64_t v = 0;
	struct stat sb;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		/* Root working on another user's store: the notice is that
		 * user's, as SQLite does with the WAL files. */
		if (fd >= 0 && geteuid() == 0 && notice_owner != 0 &&
		    fchown(fd, notice_owner, (gid_t)-1) < 0) {
			/* the owner check below refuses to write it */
		}
	}
	if (fd < 0) {
		fprintf(stderr,
		        "saslgatectl: warning: %s: %s (daemons see the change within a second)\n",
		        path, strerror(errno));
		return;
	}
	/* Planted by another account, it is not ours to write (it may be a
	 * hard link to something else). */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != notice_owner) {
		fprintf(stderr,
		        "saslgatectl: warning: %s does not belong to the owner of %s; not "
		        "written (daemons see the change within a second)\n",
		        path, STORE_POLICY_DB);
		close(fd);
		return;
	}
	if (flock(fd, LOCK_EX) == 0) {
		if (store_notice_read(fd, &v) < 0)
			v = 0;
		v++;
		for (int i = 7; i >= 0; i--, v >>= 8)
			b[i] = (unsigned char)(v & 0xff);
		if (pwrite(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
			fprintf(stderr, "saslgatectl: warning: %s: %s\n", path, strerror(errno));
	}
	close(fd);
}

/* Called by SQLite after each commit is visible to other connections. Taking
 * the WAL hook also takes over the automatic checkpoint, done here. */
static int committed(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	notice_bump(notice_path);
	if (frames >= 1000)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

/* SQLite removes policy.db-wal and -shm when its last connection closes,
 * and the next process to open the store makes them anew, as its own user.
 * If that were a daemon, saslgatectl (root) would later read and checkpoint
 * a WAL file the daemon's account can write. Persistent, they stay the
 * files saslgatectl made (its user, policy.db's mode); the daemons read them
 * through SQLite's read-only shared memory. */
static void keep_wal_files(sqlite3 *db)
{
	int persist = 1;

	sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}

int store_open_admin(const char *dir, int create, sqlite3 **db, struct sg_err *err)
{
	char path[4096];
	struct stat sb;
	uid_t owner = geteuid();

	*db = NULL;
	if (store_path(dir, STORE_POLICY_DB, path, sizeof(path), err) < 0)
		return -1;
	if (create) {
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			return sg_err_set(err, "cannot create store directory %s: %s", dir,
			                  strerror(errno));
		if (stat(path, &sb) == 0)
			return sg_err_set(err, "%s already exists; refusing to overwrite a store",
			                  path);
	} else if (stat(path, &sb) < 0) {
		return sg_err_set(err, "%s: %s (create the store with \"saslgatectl init\")", path,
		                  strerror(errno));
	} else {
		owner = sb.st_uid;
	}
	if (stat(dir, &sb) == 0 && (sb.st_mode & S_IWOTH) && !(sb.st_mode & S_ISVTX))
		return sg_err_set(err,
		                  "store directory %s is world-writable; refusing to use it "
		                  "(chmod o-w %s)",
		                  dir, dir);
	/* Before SQLite reads anything of them. */
	if (companions_check(dir, owner, err) < 0)
		return -1;
	if (open_file(path, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), db, err) < 0)
		return -1;
	/* SQLite falls back to read-only when the file cannot be written. */
	if (sqlite3_db_readonly(*db, "main") == 1) {
		sg_err_set(err, "%s: cannot be opened for writing: %s", path,
		           access(path, W_OK) < 0 ? strerror(errno) : "read-only");
		store_close(db);
		return -1;
	}
	if (configure_rw(*db, path, err) < 0) {
		store_close(db);
		return -1;
	}
	/* Again now that SQLite holds the WAL files open: one planted between
	 * the first look and the open is refused too, and is not checkpointed
	 * into policy.db when the connection closes. */
	if (companions_check(dir, owner, err) < 0) {
		sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
		store_close(db);
		return -1;
	}
	if (migrate(*db, schema_policy_migrations, path, err) < 0 ||
	    store_path(dir, STORE_POLICY_NOTICE, notice_path, sizeof(notice_path), err) < 0) {
		store_close(db);
		return -1;
	}
	notice_owner = owner;
	keep_wal_files(*db);
	sqlite3_wal_hook(*db, committed, NULL);
	if (create)
		notice_bump(notice_path);
	return 0;
}

int store_open_readonly(const char *dir, sqlite3 **db, struct sg_err *err)
{
	char path[4096];
	struct stat sb;
	int v, newest = store_policy_schema_version();
	uid_t me = geteuid();

	*db = NULL;
	if (store_path(dir, STORE_POLICY_DB, path, sizeof(path), err) < 0)
		return -1;
	if (access(path, R_OK) < 0 || stat(path, &sb) < 0)
		return sg_err_set(err, "%s: %s", path, strerror(errno));
	if (me != 0 && me != sb.st_uid) {
		if (open_guarded(dir, path, sb.st_uid, db, err) < 0)
			return -1;
	} else if (open_file(path, SQLITE_OPEN_READONLY, db, err) < 0) {
		return -1;
	}
	v = store_schema_version(*db);
	if (v != newest) {
		if (v < 0)
			sg_err_set(err, "%s: not a saslgate store: %s", path, sqlite3_errmsg(*db));
		else
			sg_err_set(err, "%s: schema version %d, this program needs %d%s", path, v,
			           newest, v < newest ? " (run \"saslgatectl check\")" : "");
		store_close(db);
		return -1;
	}
	return 0;
}

int store_open_activity(const char *dir, int readonly, sqlite3 **db, struct sg_err *err)
{
	char path[4096];

	*db = NULL;
	if (store_path(dir, STORE_ACTIVITY_DB, path, sizeof(path), err) < 0)
		return -1;
	if (readonly) {
		if (access(path, R_OK) < 0)
			return sg_err_set(err, "%s: %s (no daemon has recorded activity yet)", path,
			                  strerror(errno));
		if (open_file(path, SQLITE_OPEN_READONLY, db, err) < 0)
			return -1;
		if (store_schema_version(*db) != store_activity_schema_version()) {
			sg_err_set(err, "%s: unexpected schema version %d", path,
			           store_schema_version(*db));
			store_close(db);
			return -1;
		}
		return 0;
	}
	if (open_file(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, db, err) < 0)
		return -1;
	if (configure_rw(*db, path, err) < 0 ||
	    migrate(*db, schema_activity_migrations, path, err) < 0) {
		store_close(db);
		return -1;
	}
	return 0;
}

void store_close(sqlite3 **db)
{
	if (db == NULL || *db == NULL)
		return;
	sqlite3_close_v2(*db);
	*db = NULL;
}

int store_data_version(sqlite3 *db, int64_t *version, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "data_version: %s", sqlite3_errmsg(db));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return sg_err_set(err, "data_version: %s", sqlite3_errmsg(db));
	return 0;
}

int store_begin(sqlite3 *db, struct sg_err *err)
{
	return store_exec(db, "BEGIN IMMEDIATE", err);
}

int store_commit(sqlite3 *db, struct sg_err *err)
{
	if (store_exec(db, "COMMIT", err) < 0) {
		store_rollback(db);
		return -1;
	}
	return 0;
}

void store_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

const char *store_actor(void)
{
	static char actor[64];
	const char *sudo = getenv("SUDO_USER");
	struct passwd *pw;

	if (sudo != NULL && *sudo != '\0')
		return sudo;
	if (actor[0] == '\0') {
		pw = getpwuid(getuid());
		if (pw != NULL)
			sg_strlcpy(actor, pw->pw_name, sizeof(actor));
		else
			snprintf(actor, sizeof(actor), "uid:%ld", (long)getuid());
	}
	return actor;
}

int store_audit(sqlite3 *db, const char *action, const char *object, const char *before_json,
                const char *after_json, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO audit (at, actor, action, object, before, after) "
	                       "VALUES (?, ?, ?, ?, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "audit: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	sqlite3_bind_text(st, 2, store_actor(), -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, object, -1, SQLITE_STATIC);
	if (before_json != NULL)
		sqlite3_bind_text(st, 5, before_json, -1, SQLITE_STATIC);
	if (after_json != NULL)
		sqlite3_bind_text(st, 6, after_json, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sg_err_set(err, "audit: %s", sqlite3_errmsg(db));
	return store_exec(db,
	                  "UPDATE settings SET value = CAST(value AS INTEGER) + 1 "
	                  "WHERE key = 'generation'",
	                  err);
}

int store_setting_get(sqlite3 *db, const char *key, char *buf, size_t len, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc, found = 0;

	if (sqlite3_prepare_v2(db, "SELECT value FROM settings WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return sg_err_set(err, "settings: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (sg_strlcpy(buf, v != NULL ? v : "", len) >= len) {
			sqlite3_finalize(st);
			return sg_err_set(err, "setting %s: value too long", key);
		}
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sg_err_set(err, "settings: %s", sqlite3_errmsg(db));
	return found;
}

int store_setting_set(sqlite3 *db, const char *key, const char *value, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "INSERT INTO settings (key, value) VALUES (?, ?) "
	                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	                       -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "settings: %s", sqlite3_errmsg(db));
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sg_err_set(err, "settings: %s", sqlite3_errmsg(db));
	return 0;
}

int64_t store_generation(sqlite3 *db)
{
	char buf[32];

	if (store_setting_get(db, "generation", buf, sizeof(buf), NULL) != 1)
		return -1;
	return strtoll(buf, NULL, 10);
}

/* The count of exceptions whose expiry satisfies sql with ?1 and ?2. */
static int count_exceptions(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t *n,
                            struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "%s", sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : sg_err_set(err, "%s", sqlite3_errmsg(db));
}

int store_exception_counts(sqlite3 *db, int64_t now, int64_t horizon, int64_t *active,
                           int64_t *expiring, struct sg_err *err)
{
	*active = *expiring = 0;
	if (count_exceptions(db,
	                     "SELECT count(*) FROM exceptions WHERE "
	                     "expires_at IS NULL OR expires_at > ?1",
	                     now, 0, active, err) < 0)
		return -1;
	return count_exceptions(db,
	                        "SELECT count(*) FROM exceptions WHERE expires_at > ?1 AND "
	                        "expires_at <= ?2",
	                        now, now + horizon, expiring, err);
}

int store_check(sqlite3 *db, struct sg_err *err)
{
	sqlite3_stmt *st;
	int rc, bad = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "integrity_check: %s", sqlite3_errmsg(db));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);

		if (r == NULL || strcmp(r, "ok") != 0) {
			sg_err_set(err, "integrity check: %s", r != NULL ? r : "(null)");
			bad = 1;
		}
	} else {
		sg_err_set(err, "integrity check: %s", sqlite3_errmsg(db));
		bad = 1;
	}
	sqlite3_finalize(st);
	if (bad)
		return -1;
	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK)
		return sg_err_set(err, "foreign_key_check: %s", sqlite3_errmsg(db));
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sg_err_set(err, "foreign key violation in table %s (row %lld)",
		           (const char *)sqlite3_column_text(st, 0),
		           (long long)sqlite3_column_int64(st, 1));
		bad = 1;
	}
	sqlite3_finalize(st);
	return bad ? -1 : 0;
}
