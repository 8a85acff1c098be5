/*
 * location - named sets of IPv4/IPv6 CIDR ranges, referenced by policies and
 * exceptions.
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
	return namedset_write(ctl, SA_LOCATION, op, cmd->path, argv[optind], argv + optind + 1,
	                      argc - optind - 1);
}

static int location_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_ADD, 2, -1);
}

static int location_remove(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_REMOVE, 1, 1);
}

static int location_add_net(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_ADD_MEMBER, 2, -1);
}

static int location_remove_net(struct ctl *ctl, const struct ctl_command *cmd, int argc,
                               char **argv)
{
	return run(ctl, cmd, argc, argv, NAMEDSET_REMOVE_MEMBER, 2, -1);
}

static int location_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc = ctl_parse_plain(ctl, cmd, argc, argv, 0, 0);

	return rc != CTL_OPT_CONTINUE ? rc : namedset_list(ctl, SA_LOCATION);
}

const struct ctl_command ctl_location_verbs[] = {
    {"add", "NAME CIDR...", "create a location", location_add, NULL, NULL},
    {"remove", "NAME", "remove a location that no policy or exception uses", location_remove, NULL,
     NULL},
    {"add-net", "NAME CIDR...", "add networks to a location", location_add_net, NULL, NULL},
    {"remove-net", "NAME CIDR...", "remove networks from a location", location_remove_net, NULL,
     NULL},
    {"list", "", "list locations and their networks", location_list, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};
