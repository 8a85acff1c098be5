/*
 * fuzz_import - libFuzzer target for "saslgatectl import": the export document
 * is validated with SQLite's JSON functions and the same validators as the
 * single-entry commands (admin/cmd_import.c ctl_import_doc), on a real
 * policy.db in a temporary directory. Every run happens inside one write
 * transaction that is rolled back, so runs do not influence each other.
 *
 * Input: the document (at most INPUT_MAX bytes; like "saslgatectl import",
 * a document with a NUL byte is refused before parsing).
 *
 * Invariants checked on an accepted document:
 * - the imported policy compiles into a snapshot (what ctl_finish checks
 *   before it commits: an accepted import that does not compile would be a
 *   validation gap, reported here as a crash);
 * - export then import of that export is accepted, with the same number of
 *   groups, locations, policies and exceptions, and exporting again gives
 *   byte for byte the same document (export and import are inverses).
 *
 * The Makefile links this target with saslgatectl's objects except main.o.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_export.h"
#include "cmd_import.h"
#include "ctl.h"
#include "snapshot.h"
#include "store.h"

#define INPUT_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3 *db;
static char store_root[] = "/tmp/fuzz_import.XXXXXX";
static char store_dir_path[sizeof(store_root) + 16];

static void remove_store(void)
{
	static const char *const files[] = {"policy.db", "policy.db-wal", "policy.db-shm"};
	char path[sizeof(store_dir_path) + 32];

	store_close(&db);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", store_dir_path, files[i]);
		unlink(path);
	}
	rmdir(store_dir_path);
	rmdir(store_root);
}

static void open_store(void)
{
	struct sg_err err = {{0}};

	if (mkdtemp(store_root) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(store_dir_path, sizeof(store_dir_path), "%s/store", store_root);
	if (store_open_admin(store_dir_path, 1, &db, &err) < 0) {
		fprintf(stderr, "fuzz_import: %s\n", err.text);
		abort();
	}
	atexit(remove_store);
	/* Nothing is ever committed; no need to wait for the disk. */
	if (store_exec(db, "PRAGMA synchronous = OFF", &err) < 0)
		abort();
	/* The import's messages name the invalid entry on every rejected input:
	 * silence them. libFuzzer and the sanitizers write to file descriptor 2
	 * directly and still report. */
	stderr = fopen("/dev/null", "w");
	if (stderr == NULL)
		abort();
}

/* The export of the current (uncommitted) policy, malloc'ed. */
static char *export_doc(const struct ctl *ctl)
{
	struct sg_err err = {{0}};
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (out == NULL)
		abort();
	if (ctl_export_doc(db, ctl->now, out, &err) < 0)
		abort(); /* reading back what was just written cannot fail */
	if (fclose(out) != 0)
		abort();
	return text;
}

static void check_accepted(const struct ctl *ctl, const struct ctl_import_counts *n)
{
	struct ctl_import_counts again;
	struct sg_err err = {{0}};
	struct snapshot *snap;
	char *first, *second;

	snap = snapshot_load(db, &err);
	if (snap == NULL)
		abort(); /* accepted by import, refused by the compiler */
	snapshot_unref(&snap);
	first = export_doc(ctl);
	if (ctl_import_doc(ctl, db, first, "export", &again) != CTL_OK)
		abort();
	if (again.groups != n->groups || again.locations != n->locations ||
	    again.policies != n->policies || again.exceptions != n->exceptions)
		abort();
	second = export_doc(ctl);
	if (strcmp(first, second) != 0)
		abort();
	free(first);
	free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A fixed "now" (2026-01-01T00:00:00Z) keeps runs reproducible. */
	static const struct ctl ctl = {"(fuzz)", 0, 1767225600};
	struct ctl_import_counts n;
	char *doc;

	if (size > INPUT_MAX || memchr(data, '\0', size) != NULL)
		return 0;
	if (db == NULL)
		open_store();
	doc = malloc(size + 1);
	if (doc == NULL)
		abort();
	memcpy(doc, data, size);
	doc[size] = '\0';
	if (ctl_begin(db) != CTL_OK)
		abort();
	if (ctl_import_doc(&ctl, db, doc, "fuzz", &n) == CTL_OK)
		check_accepted(&ctl, &n);
	store_rollback(db);
	free(doc);
	return 0;
}
