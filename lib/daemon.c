/*
 * daemon - detaching, pid files and dropping privileges.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

int daemon_detach(struct sg_err *err)
{
	pid_t pid;
	int fd;

	pid = fork();
	if (pid < 0)
		return sg_err_set(err, "fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return sg_err_set(err, "setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		return sg_err_set(err, "chdir /: %s", strerror(errno));
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return sg_err_set(err, "/dev/null: %s", strerror(errno));
	if (dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
	    dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return sg_err_set(err, "dup2: %s", strerror(errno));
	}
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
}

/* The pid recorded in path: >0, 0 if absent/unreadable/garbage. */
static pid_t pidfile_read(const char *path)
{
	char buf[32];
	ssize_t n;
	long pid;
	char *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || (*end != '\n' && *end != '\0') || pid <= 0 || pid > 0x7fffffff)
		return 0;
	return (pid_t)pid;
}

static int pid_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

int daemon_pidfile_write(const char *path, struct sg_err *err)
{
	char buf[32];
	int fd, attempt, len;

	for (attempt = 0; attempt < 2; attempt++) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			break;
		if (errno != EEXIST)
			return sg_err_set(err, "pid file %s: %s", path, strerror(errno));
		{
			pid_t other = pidfile_read(path);

			if (other > 0 && other != getpid() && pid_alive(other))
				return sg_err_set(err, "pid file %s: already running as pid %ld",
				                  path, (long)other);
		}
		log_info("removing stale pid file %s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			return sg_err_set(err, "pid file %s: %s", path, strerror(errno));
	}
	if (fd < 0)
		return sg_err_set(err, "pid file %s: created concurrently by another process",
		                  path);
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)len) != len) {
		int e = errno;

		close(fd);
		unlink(path);
		return sg_err_set(err, "pid file %s: %s", path, strerror(e));
	}
	if (close(fd) < 0)
		return sg_err_set(err, "pid file %s: %s", path, strerror(errno));
	return 0;
}

void daemon_pidfile_remove(const char *path)
{
	if (path == NULL || *path == '\0')
		return;
	if (pidfile_read(path) == getpid())
		unlink(path);
}

int daemon_lookup_ids(const char *user, const char *group, uid_t *uid, gid_t *gid,
                      struct sg_err *err)
{
	struct passwd *pw;
	struct group *gr;

	if (user == NULL || *user == '\0')
		return sg_err_set(err, "no user given");
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL)
		return sg_err_set(err, "unknown user \"%s\"%s%s", user, errno ? ": " : "",
		                  errno ? strerror(errno) : "");
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group != NULL && *group != '\0') {
		errno = 0;
		gr = getgrnam(group);
		if (gr == NULL)
			return sg_err_set(err, "unknown group \"%s\"%s%s", group, errno ? ": " : "",
			                  errno ? strerror(errno) : "");
		*gid = gr->gr_gid;
	}
	return 0;
}

int daemon_drop_privileges(const char *user, const char *group, struct sg_err *err)
{
	uid_t uid;
	gid_t gid;

	if (user == NULL || *user == '\0') {
		if (geteuid() == 0)
			log_warning("running as root; use -u to name an unprivileged user");
		return 0;
	}
	if (daemon_lookup_ids(user, group, &uid, &gid, err) < 0)
		return -1;
	if (uid == 0)
		return sg_err_set(err, "user \"%s\" is root: name an unprivileged user", user);
	if (geteuid() != 0) {
		if (uid == geteuid() && gid == getegid())
			return 0; /* already there */
		return sg_err_set(err, "cannot change to user %s: not running as root", user);
	}
	if (setgroups(1, &gid) < 0)
		return sg_err_set(err, "setgroups: %s", strerror(errno));
	if (setgid(gid) < 0)
		return sg_err_set(err, "setgid %ld: %s", (long)gid, strerror(errno));
	if (setuid(uid) < 0)
		return sg_err_set(err, "setuid %ld: %s", (long)uid, strerror(errno));
	if (setuid(0) == 0 || geteuid() == 0 || getegid() != gid)
		return sg_err_set(err, "could not drop privileges to %s: root is still reachable",
		                  user);
	return 0;
}

int daemon_check_store_dir(const char *dir, struct sg_err *err)
{
	struct passwd *pw;
	char who[96];

	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0)
		return 0;
	if (errno == ENOENT)
		return sg_err_set(
		    err, "store directory %s does not exist (saslgatectl init creates it)", dir);
	if (errno == EROFS)
		return sg_err_set(err,
		                  "store directory %s is on a read-only file system: the daemon "
		                  "writes activity.db and SQLite's policy.db-shm there",
		                  dir);
	if (errno != EACCES && errno != EPERM)
		return sg_err_set(err, "store directory %s: %s", dir, strerror(errno));
	pw = getpwuid(geteuid());
	if (pw != NULL)
		snprintf(who, sizeof(who), "user %s", pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid %ld", (long)geteuid());
	return sg_err_set(err,
	                  "store directory %s is not writable by %s: the daemon writes "
	                  "activity.db and SQLite's policy.db-shm there (give its group write "
	                  "access, e.g. chgrp GROUP %s && chmod 1770 %s)",
	                  dir, who, dir, dir);
}
