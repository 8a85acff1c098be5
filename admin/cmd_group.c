/*
 * group - named sets of user patterns, referenced by policies and exceptions.
 * The work is done by namedset.c.
 */
#include "ctl.h"
#include "namedset.h"

static int run(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
               enum namedset_op op, int min, int max)
{
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, min, max);

	if (rc != CTL_OPT_CONTINUE)
		return rc;
	return namedset_write(ctl, SA_GROUP, op, cmd->path, argv[optind], argv + optind + 1,
	                      argc - optind - 1);
}

static int group_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_ADD, 1, -1);
}

static int group_remove(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_REMOVE, 1, 1);
}

static int group_add_member(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_ADD_MEMBER, 2, -1);
}

static int group_remove_member(struct ctl *ctl, const struct ctl_command *cmd, int argc,
                               char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_REMOVE_MEMBER, 2, -1);
}

static int group_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 0, 0);

	return rc != CTL_OPT_CONTINUE ? rc : namedset_list(ctl, SA_GROUP);
}

const struct ctl_command ctl_group_verbs[] = {
    {"add", "NAME [PATTERN...]", "create a group", group_add, NULL, NULL},
    {"remove", "NAME", "remove a group that no policy or exception uses", group_remove, NULL, NULL},
    {"add-member", "NAME PATTERN...", "add user patterns to a group", group_add_member, NULL, NULL},
    {"remove-member", "NAME PATTERN...", "remove user patterns from a group", group_remove_member,
     NULL, NULL},
    {"list", "", "list groups and their members", group_list, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
