/* Unit tests for lib/daemon.c: pid files, id lookup, privilege drop (as root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_daemon_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/test.pid", dir);
	log_open("test_daemon", 1, 0);
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static long read_pid(void)
{
	FILE *fp = fopen(path, "r");
	long pid = -1;

	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%ld", &pid) != 1)
		pid = -1;
	fclose(fp);
	return pid;
}

static void write_text(const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static pid_t dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static void test_pidfile(void **state)
{
	struct sg_err err;
	char text[32];

	(void)state;
	unlink(path);
	assert_int_equal(daemon_pidfile_write(path, &err), 0);
	assert_int_equal(read_pid(), (long)getpid());
	/* our own pid file (e.g. after a restart in place) is replaced */
	assert_int_equal(daemon_pidfile_write(path, &err), 0);

	/* a live process holds it: refused, file untouched */
	write_text("1\n");
	assert_int_equal(daemon_pidfile_write(path, &err), -1);
	assert_non_null(strstr(err.text, "already running as pid 1"));
	assert_int_equal(read_pid(), 1);
	daemon_pidfile_remove(path); /* not ours: kept */
	assert_int_equal(read_pid(), 1);

	/* stale: the pid is not running */
	snprintf(text, sizeof(text), "%ld\n", (long)dead_pid());
	write_text(text);
	assert_int_equal(daemon_pidfile_write(path, &err), 0);
	assert_int_equal(read_pid(), (long)getpid());

	/* garbage is stale too */
	write_text("not a pid\n");
	assert_int_equal(daemon_pidfile_write(path, &err), 0);
	assert_int_equal(read_pid(), (long)getpid());

	daemon_pidfile_remove(path);
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(daemon_pidfile_write("/nonexistent-dir/x.pid", &err), -1);
	assert_non_null(strstr(err.text, "/nonexistent-dir/x.pid"));
}

static void test_lookup_ids(void **state)
{
	struct sg_err err;
	uid_t uid = 99;
	gid_t gid = 99;

	(void)state;
	assert_int_equal(daemon_lookup_ids("root", NULL, &uid, &gid, &err), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_int_equal(daemon_lookup_ids("no-such-user-xyz", NULL, &uid, &gid, &err), -1);
	assert_non_null(strstr(err.text, "no-such-user-xyz"));
	assert_int_equal(daemon_lookup_ids("root", "no-such-group-xyz", &uid, &gid, &err), -1);
	assert_non_null(strstr(err.text, "no-such-group-xyz"));
}

static void test_drop_privileges(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(daemon_drop_privileges(NULL, NULL, NULL), 0);
	assert_int_equal(daemon_drop_privileges("", NULL, NULL), 0);
	if (geteuid() != 0)
		skip();
	/* as root without a user: a warning naming -u */
	{
		FILE *tmp = tmpfile();
		int saved = dup(2);
		char buf[256];
		size_t n;

		assert_non_null(tmp);
		log_set_level(LOG_LEVEL_INFO);
		dup2(fileno(tmp), 2);
		assert_int_equal(daemon_drop_privileges(NULL, NULL, NULL), 0);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		log_set_level(LOG_LEVEL_ERROR);
		rewind(tmp);
		n = fread(buf, 1, sizeof(buf) - 1, tmp);
		buf[n] = '\0';
		fclose(tmp);
		assert_non_null(strstr(buf, "warning: running as root; use -u"));
	}
	/* in a child: the drop cannot be undone */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sg_err err;
		uid_t uid;
		gid_t gid, groups[4];

		if (daemon_lookup_ids("nobody", NULL, &uid, &gid, &err) < 0)
			_exit(10);
		if (daemon_drop_privileges("nobody", NULL, &err) < 0)
			_exit(11);
		if (getuid() != uid || geteuid() != uid || getgid() != gid || setuid(0) == 0)
			_exit(12);
		if (getgroups(4, groups) != 1 || groups[0] != gid)
			_exit(13);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	{
		struct sg_err err;

		assert_int_equal(daemon_drop_privileges("root", NULL, &err), -1);
		assert_non_null(strstr(err.text, "root"));
		assert_int_equal(daemon_drop_privileges("no-such-user-xyz", NULL, &err), -1);
		assert_int_equal(geteuid(), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pidfile),
	    cmocka_unit_test(test_lookup_ids),
	    cmocka_unit_test(test_drop_privileges),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
