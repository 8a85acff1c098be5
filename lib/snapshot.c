/*
 * snapshot - building the compiled, immutable policy snapshot (see snapshot.h;
 * the layout is in snapshot_int.h).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "snapshot.h"
#include "snapshot_int.h"

#define GROW(arr, n, cap)                                                                          \
	do {                                                                                       \
		if ((n) == (cap)) {                                                                \
			(cap) = (cap) ? (cap)*2 : 8;                                               \
			(arr) = xrealloc((arr), (cap) * sizeof(*(arr)));                           \
		}                                                                                  \
	} while (0)

static const char *const state_names[] = {"off", "report-only", "enforce"};
static const char *const tls_names[] = {"any", "plaintext", "encrypted"};

const char *policy_state_name(enum policy_state s)
{
	return (unsigned)s < 3 ? state_names[s] : "?";
}

int policy_state_parse(const char *name, enum policy_state *out)
{
	for (int i = 0; i < 3; i++)
		if (sg_strcasecmp(name, state_names[i]) == 0) {
			*out = (enum policy_state)i;
			return 0;
		}
	return -1;
}

const char *tls_condition_name(enum tls_condition t)
{
	return (unsigned)t < 3 ? tls_names[t] : "?";
}

int tls_condition_parse(const char *name, enum tls_condition *out)
{
	for (int i = 0; i < 3; i++)
		if (sg_strcasecmp(name, tls_names[i]) == 0) {
			*out = (enum tls_condition)i;
			return 0;
		}
	return -1;
}

int policy_reply_valid(const char *code, const char *enh, const char *text, struct sg_err *err)
{
	int parts = 0, digits = 0;

	if (code == NULL || strlen(code) != 3 || (code[0] != '4' && code[0] != '5') ||
	    !isdigit((unsigned char)code[1]) || !isdigit((unsigned char)code[2]))
		return sg_err_set(err, "reply code \"%s\": must be a 4xx or 5xx SMTP code",
		                  code != NULL ? code : "");
	if (enh == NULL || (enh[0] != '4' && enh[0] != '5') || enh[1] != '.')
		return sg_err_set(err, "enhanced status code \"%s\": must be 4.x.y or 5.x.y",
		                  enh != NULL ? enh : "");
	for (const char *p = enh + 2;; p++) {
		if (isdigit((unsigned char)*p)) {
			if (++digits > 3)
				break;
		} else if ((*p == '.' || *p == '\0') && digits > 0) {
			parts++;
			digits = 0;
			if (*p == '\0')
				break;
		} else {
			digits = 99;
			break;
		}
	}
	if (parts != 2 || digits != 0)
		return sg_err_set(err, "enhanced status code \"%s\": must be class.subject.detail",
		                  enh);
	if (enh[0] != code[0])
		return sg_err_set(
		    err,
		    "reply \"%s %s\": the code and the enhanced code must agree in "
		    "class (%cxx with %c.x.y), or Postfix and libmilter drop the reply",
		    code, enh, code[0], code[0]);
	if (text == NULL || *text == '\0')
		return sg_err_set(err, "reply text: must not be empty");
	if (strlen(text) > 400)
		return sg_err_set(err, "reply text: longer than 400 characters");
	for (const char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return sg_err_set(err,
			                  "reply text: only printable ASCII is allowed (no line "
			                  "breaks or control characters)");
	return 0;
}

/* ------------------------------------------------------------------ builder */

struct snapshot_builder {
	int64_t generation;
	enum mech_class unknown_class;
	struct hash *catalogue;
	struct hash *group_index; /* name -> index + 1 */
	struct sn_group *groups;
	size_t n_groups, cap_groups;
	size_t *cap_patterns;
	struct hash *location_index; /* name -> index + 1 */
	struct sn_location *locations;
	size_t n_locations, cap_locations;
	size_t *cap_nets;
	struct policy_def *policies;
	size_t n_policies, cap_policies;
	struct exception_def *exceptions;
	size_t n_exceptions, cap_exceptions;
};

#define IDX_TO_PTR(i) ((void *)(uintptr_t)((i) + 1))
#define PTR_TO_IDX(p) ((size_t)(uintptr_t)(p)-1)

static int catalogue_put(struct hash *cat, const char *name, enum mech_class c)
{
	char lower[MECH_NAME_MAX + 1];

	if (sg_lower(lower, name, sizeof(lower)) >= sizeof(lower))
		return -1;
	*hash_slot(cat, lower) = IDX_TO_PTR(c);
	return 0;
}

struct snapshot_builder *snapshot_builder_new(void)
{
	struct snapshot_builder *b = xcalloc(1, sizeof(*b));

	b->unknown_class = MECH_CLASS_LEGACY;
	b->catalogue = hash_create(64);
	b->group_index = hash_create(16);
	b->location_index = hash_create(16);
	for (const struct mech_default *m = mech_defaults; m->name != NULL; m++)
		catalogue_put(b->catalogue, m->name, m->mech_class);
	return b;
}

int snapshot_builder_setting(struct snapshot_builder *b, const char *key, const char *value,
                             struct sg_err *err)
{
	if (strcmp(key, "unknown_mechanism_class") == 0) {
		if (mech_class_parse(value, &b->unknown_class) < 0)
			return sg_err_set(
			    err, "setting unknown_mechanism_class: unknown class \"%s\"", value);
	} else if (strcmp(key, "generation") == 0) {
		b->generation = strtoll(value, NULL, 10);
	}
	/* Other settings do not affect decisions. */
	return 0;
}

int snapshot_builder_mech(struct snapshot_builder *b, const char *name, enum mech_class c,
                          struct sg_err *err)
{
	if (!mech_name_valid(name))
		return sg_err_set(err, "mechanism \"%s\": not a valid SASL mechanism name", name);
	if ((unsigned)c >= MECH_CLASS_COUNT)
		return sg_err_set(err, "mechanism %s: invalid class", name);
	return catalogue_put(b->catalogue, name, c);
}

static size_t group_get(struct snapshot_builder *b, const char *name)
{
	void **slot = hash_slot(b->group_index, name);

	if (*slot == NULL) {
		GROW(b->groups, b->n_groups, b->cap_groups);
		b->cap_patterns = xrealloc(b->cap_patterns, b->cap_groups * sizeof(size_t));
		memset(&b->groups[b->n_groups], 0, sizeof(b->groups[0]));
		b->groups[b->n_groups].name = xstrdup(name);
		b->cap_patterns[b->n_groups] = 0;
		*slot = IDX_TO_PTR(b->n_groups);
		b->n_groups++;
	}
	return PTR_TO_IDX(*slot);
}

int snapshot_builder_group(struct snapshot_builder *b, const char *group, struct sg_err *err)
{
	if (group == NULL || *group == '\0')
		return sg_err_set(err, "group: empty name");
	group_get(b, group);
	return 0;
}

int snapshot_builder_group_member(struct snapshot_builder *b, const char *group,
                                  const char *pattern, struct sg_err *err)
{
	struct pattern p;
	struct sn_group *g;
	size_t i;

	if (group == NULL || *group == '\0')
		return sg_err_set(err, "group: empty name");
	if (pattern_parse(pattern, &p, err) < 0)
		return -1;
	i = group_get(b, group);
	g = &b->groups[i];
	GROW(g->patterns, g->n_patterns, b->cap_patterns[i]);
	g->patterns[g->n_patterns++] = p;
	return 0;
}

static size_t location_get(struct snapshot_builder *b, const char *name)
{
	void **slot = hash_slot(b->location_index, name);

	if (*slot == NULL) {
		GROW(b->locations, b->n_locations, b->cap_locations);
		b->cap_nets = xrealloc(b->cap_nets, b->cap_locations * sizeof(size_t));
		memset(&b->locations[b->n_locations], 0, sizeof(b->locations[0]));
		b->locations[b->n_locations].name = xstrdup(name);
		b->cap_nets[b->n_locations] = 0;
		*slot = IDX_TO_PTR(b->n_locations);
		b->n_locations++;
	}
	return PTR_TO_IDX(*slot);
}

int snapshot_builder_location(struct snapshot_builder *b, const char *location, struct sg_err *err)
{
	if (location == NULL || *location == '\0')
		return sg_err_set(err, "location: empty name");
	location_get(b, location);
	return 0;
}

int snapshot_builder_location_net(struct snapshot_builder *b, const char *location,
                                  const char *cidr, struct sg_err *err)
{
	struct cidr range;
	struct sn_location *l;
	size_t i;

	if (location == NULL || *location == '\0')
		return sg_err_set(err, "location: empty name");
	if (cidr_parse(cidr, &range, err) < 0)
		return -1;
	i = location_get(b, location);
	l = &b->locations[i];
	GROW(l->nets, l->n_nets, b->cap_nets[i]);
	l->nets[l->n_nets++] = range;
	return 0;
}

static char *dup_text(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

int snapshot_builder_policy(struct snapshot_builder *b, const struct policy_def *def,
                            struct sg_err *err)
{
	struct policy_def *p;

	if (def->name == NULL || *def->name == '\0')
		return sg_err_set(err, "policy: empty name");
	GROW(b->policies, b->n_policies, b->cap_policies);
	p = &b->policies[b->n_policies++];
	*p = *def;
	p->name = dup_text(def->name);
	p->mechs = dup_text(def->mechs);
	p->include_users = dup_text(def->include_users);
	p->include_groups = dup_text(def->include_groups);
	p->exclude_users = dup_text(def->exclude_users);
	p->exclude_groups = dup_text(def->exclude_groups);
	p->include_locations = dup_text(def->include_locations);
	p->exclude_locations = dup_text(def->exclude_locations);
	p->services = dup_text(def->services);
	p->reply_code = dup_text(def->reply_code);
	p->reply_enh = dup_text(def->reply_enh);
	p->reply_text = dup_text(def->reply_text);
	return 0;
}

int snapshot_builder_exception(struct snapshot_builder *b, const struct exception_def *def,
                               struct sg_err *err)
{
	struct exception_def *e;

	const char *fields[5] = {def->policy, def->user_pattern, def->group, def->location,
	                         def->mechs};
	size_t len[5], total = 0;
	char *p;

	/* One allocation for the five strings: 100,000 exceptions load fast. */
	for (int i = 0; i < 5; i++) {
		len[i] = fields[i] != NULL ? strlen(fields[i]) : 0;
		total += len[i] + 1;
	}
	p = xmalloc(total);
	for (int i = 0; i < 5; i++) {
		if (len[i] > 0)
			memcpy(p, fields[i], len[i]);
		p[len[i]] = '\0';
		fields[i] = p;
		p += len[i] + 1;
	}
	GROW(b->exceptions, b->n_exceptions, b->cap_exceptions);
	e = &b->exceptions[b->n_exceptions++];
	*e = *def;
	e->policy = fields[0]; /* owns the block */
	e->user_pattern = fields[1];
	e->group = fields[2];
	e->location = fields[3];
	e->mechs = fields[4];
	/* reason and creator do not affect decisions; explain reads them from the store */
	e->reason = NULL;
	e->created_by = NULL;
	return 0;
}

/* Frees the strings the builder copied (cast: the defs hold them as const). */
static void free_def_text(const char *s)
{
	free((void *)(uintptr_t)s);
}

static void free_policy_defs(struct snapshot_builder *b)
{
	for (size_t i = 0; i < b->n_policies; i++) {
		struct policy_def *p = &b->policies[i];

		free_def_text(p->name);
		free_def_text(p->mechs);
		free_def_text(p->include_users);
		free_def_text(p->include_groups);
		free_def_text(p->exclude_users);
		free_def_text(p->exclude_groups);
		free_def_text(p->include_locations);
		free_def_text(p->exclude_locations);
		free_def_text(p->services);
		free_def_text(p->reply_code);
		free_def_text(p->reply_enh);
		free_def_text(p->reply_text);
	}
	free(b->policies);
	for (size_t i = 0; i < b->n_exceptions; i++) {
		struct exception_def *e = &b->exceptions[i];

		free_def_text(e->policy); /* the block holding all five */
	}
	free(b->exceptions);
}

static void free_groups(struct sn_group *groups, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(groups[i].name);
		free(groups[i].patterns);
	}
	free(groups);
}

static void free_locations(struct sn_location *locations, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(locations[i].name);
		free(locations[i].nets);
	}
	free(locations);
}

void snapshot_builder_free(struct snapshot_builder **bp)
{
	struct snapshot_builder *b = *bp;

	if (b == NULL)
		return;
	hash_free(&b->catalogue, NULL);
	hash_free(&b->group_index, NULL);
	hash_free(&b->location_index, NULL);
	free_groups(b->groups, b->n_groups);
	free(b->cap_patterns);
	free_locations(b->locations, b->n_locations);
	free(b->cap_nets);
	free_policy_defs(b);
	free(b);
	*bp = NULL;
}

/* ------------------------------------------------------------------ compile */

static void mech_filter_free(struct mech_filter *f)
{
	for (size_t i = 0; i < f->n_names; i++)
		free(f->names[i]);
	free(f->names);
}

/* Parses "legacy,XOAUTH2" into a filter. empty_means_legacy: policies target
 * class legacy by default; exceptions match every mechanism by default. */
static int mech_filter_parse(const char *text, int empty_means_legacy, struct mech_filter *f,
                             const char *what, struct sg_err *err)
{
	const char *cur = text;
	char item[64];
	enum mech_class c;
	size_t cap = 0;
	int r, count = 0;

	memset(f, 0, sizeof(*f));
	while ((r = list_next(&cur, item, sizeof(item))) == 1) {
		count++;
		if (mech_class_parse(item, &c) == 0) {
			f->classes |= 1u << c;
			continue;
		}
		if (!mech_name_valid(item)) {
			mech_filter_free(f);
			return sg_err_set(err,
			                  "%s: \"%s\" is neither a mechanism class "
			                  "(legacy, password, modern) nor a mechanism name",
			                  what, item);
		}
		GROW(f->names, f->n_names, cap);
		sg_lower(item, item, sizeof(item));
		f->names[f->n_names++] = xstrdup(item);
	}
	if (r < 0) {
		mech_filter_free(f);
		return sg_err_set(err, "%s: list item too long", what);
	}
	if (count == 0) {
		if (empty_means_legacy)
			f->classes = 1u << MECH_CLASS_LEGACY;
		else
			f->any = 1;
	}
	return 0;
}

static int lookup_index(struct hash *index, const char *name, size_t *out)
{
	void *v = hash_get(index, name);

	if (v == NULL)
		return -1;
	*out = PTR_TO_IDX(v);
	return 0;
}

/* Adds the patterns of a user list and of group names to idx. */
static int compile_users(struct snapshot *snap, struct snapshot_builder *b, const char *users,
                         const char *groups, int allow_all, int *all, struct userindex **idx,
                         const char *what, struct sg_err *err)
{
	const char *cur = users;
	char item[PATTERN_MAX + 2];
	struct pattern p;
	size_t gi;
	int r;

	*idx = userindex_create();
	if (all != NULL)
		*all = 0;
	while ((r = list_next(&cur, item, sizeof(item))) == 1) {
		if (allow_all && sg_strcasecmp(item, "all") == 0) {
			*all = 1;
			continue;
		}
		if (pattern_parse(item, &p, err) < 0)
			return -1;
		userindex_add(*idx, &p, &snap->direct);
	}
	if (r < 0)
		return sg_err_set(err, "%s: user pattern too long", what);
	cur = groups;
	while ((r = list_next(&cur, item, sizeof(item))) == 1) {
		struct sn_group *g;

		if (lookup_index(b->group_index, item, &gi) < 0)
			return sg_err_set(err, "%s: unknown group \"%s\"", what, item);
		g = &snap->groups[gi];
		for (size_t k = 0; k < g->n_patterns; k++)
			userindex_add(*idx, &g->patterns[k], g);
	}
	if (r < 0)
		return sg_err_set(err, "%s: group name too long", what);
	return 0;
}

static int compile_locations(struct snapshot_builder *b, const char *text, int allow_any, int *any,
                             uint32_t **out, size_t *n, const char *what, struct sg_err *err)
{
	const char *cur = text;
	char item[128];
	size_t li, cap = 0;
	int r;

	*out = NULL;
	*n = 0;
	if (any != NULL)
		*any = 0;
	while ((r = list_next(&cur, item, sizeof(item))) == 1) {
		if (allow_any && sg_strcasecmp(item, "any") == 0) {
			*any = 1;
			continue;
		}
		if (lookup_index(b->location_index, item, &li) < 0)
			return sg_err_set(err, "%s: unknown location \"%s\"", what, item);
		GROW(*out, *n, cap);
		(*out)[(*n)++] = (uint32_t)li;
	}
	if (r < 0)
		return sg_err_set(err, "%s: location name too long", what);
	return 0;
}

static int compile_services(struct sn_policy *sp, const char *text, struct sg_err *err)
{
	const char *cur = text;
	char item[128];
	size_t cap = 0;
	int r, count = 0;

	while ((r = list_next(&cur, item, sizeof(item))) == 1) {
		count++;
		if (sg_strcasecmp(item, "any") == 0) {
			sp->any_service = 1;
			continue;
		}
		GROW(sp->services, sp->n_services, cap);
		sg_lower(item, item, sizeof(item));
		sp->services[sp->n_services++] = xstrdup(item);
	}
	if (r < 0)
		return sg_err_set(err, "policy %s: service name too long", sp->name);
	if (count == 0)
		sp->any_service = 1;
	return 0;
}

static int compile_policy(struct snapshot *snap, struct snapshot_builder *b,
                          const struct policy_def *d, struct sn_policy *sp, struct sg_err *err)
{
	char what[160];
	struct sg_err e;

	sp->name = xstrdup(d->name);
	sp->state = d->state;
	sp->enforce_from = d->enforce_from;
	sp->tls = d->tls;
	snprintf(what, sizeof(what), "policy %s: mechanisms", d->name);
	if (mech_filter_parse(d->mechs, 1, &sp->mechs, what, err) < 0)
		return -1;
	sp->mechs_text = xstrdup(d->mechs);
	snprintf(what, sizeof(what), "policy %s: include users", d->name);
	if (compile_users(snap, b, d->include_users, d->include_groups, 1, &sp->include_all_users,
	                  &sp->include_users, what, err) < 0)
		return -1;
	snprintf(what, sizeof(what), "policy %s: exclude users", d->name);
	if (compile_users(snap, b, d->exclude_users, d->exclude_groups, 0, NULL, &sp->exclude_users,
	                  what, err) < 0)
		return -1;
	snprintf(what, sizeof(what), "policy %s: include locations", d->name);
	if (compile_locations(b, d->include_locations, 1, &sp->include_any_location,
	                      &sp->include_locations, &sp->n_include_locations, what, err) < 0)
		return -1;
	if (sp->n_include_locations == 0 && !sp->include_any_location)
		sp->include_any_location = 1;
	snprintf(what, sizeof(what), "policy %s: exclude locations", d->name);
	if (compile_locations(b, d->exclude_locations, 0, NULL, &sp->exclude_locations,
	                      &sp->n_exclude_locations, what, err) < 0)
		return -1;
	if (compile_services(sp, d->services, err) < 0)
		return -1;
	if (policy_reply_valid(d->reply_code, d->reply_enh, d->reply_text, &e) < 0)
		return sg_err_set(err, "policy %s: %s", d->name, e.text);
	sg_strlcpy(sp->reply_code, d->reply_code, sizeof(sp->reply_code));
	sg_strlcpy(sp->reply_enh, d->reply_enh, sizeof(sp->reply_enh));
	sp->reply_text = xstrdup(d->reply_text);
	return 0;
}

static int compare_policy_defs(const void *a, const void *b)
{
	return strcmp(((const struct policy_def *)a)->name, ((const struct policy_def *)b)->name);
}

static void add_by_location(struct snapshot *snap, size_t *caps, struct sn_exception *e)
{
	size_t l = (size_t)e->location;

	GROW(snap->by_location[l], snap->n_by_location[l], caps[l]);
	snap->by_location[l][snap->n_by_location[l]++] = e;
}

static int compile_exception(struct snapshot *snap, struct snapshot_builder *b,
                             struct hash *policy_index, const struct exception_def *d,
                             struct sn_exception *se, size_t *loc_caps, struct sg_err *err)
{
	struct sg_err e2;
	long long id = (long long)d->id;
	size_t idx;
	struct pattern p;

	se->id = d->id;
	se->expires_at = d->expires_at;
	se->policy = -1;
	se->location = -1;
	if (*d->policy != '\0') {
		if (lookup_index(policy_index, d->policy, &idx) < 0)
			return sg_err_set(err, "exception %lld: unknown policy \"%s\"",
			                  (long long)d->id, d->policy);
		se->policy = (int)idx;
	}
	if (*d->location != '\0') {
		if (lookup_index(b->location_index, d->location, &idx) < 0)
			return sg_err_set(err, "exception %lld: unknown location \"%s\"", id,
			                  d->location);
		se->location = (int)idx;
	}
	if (mech_filter_parse(d->mechs, 0, &se->mechs, "mechanisms", &e2) < 0)
		return sg_err_set(err, "exception %lld: %s", id, e2.text);
	if (*d->user_pattern != '\0' && *d->group != '\0')
		return sg_err_set(err, "exception %lld: both a user and a group", id);
	if (*d->user_pattern != '\0') {
		if (pattern_parse(d->user_pattern, &p, &e2) < 0)
			return sg_err_set(err, "exception %lld: %s", id, e2.text);
		se->has_user = 1;
		userindex_add(snap->exception_users, &p, se);
	} else if (*d->group != '\0') {
		struct sn_group *g;

		if (lookup_index(b->group_index, d->group, &idx) < 0)
			return sg_err_set(err, "exception %lld: unknown group \"%s\"", id,
			                  d->group);
		g = &snap->groups[idx];
		se->has_user = 1;
		se->from_group = 1;
		for (size_t k = 0; k < g->n_patterns; k++)
			userindex_add(snap->exception_users, &g->patterns[k], se);
	} else if (se->location >= 0) {
		add_by_location(snap, loc_caps, se);
	} else {
		return sg_err_set(err, "exception %lld: needs a user, a group or a location", id);
	}
	return 0;
}

static int compile(struct snapshot *snap, struct snapshot_builder *b, struct sg_err *err)
{
	struct hash *policy_index;
	size_t *loc_caps;
	int rc = 0;

	for (size_t i = 0; i < snap->n_locations; i++)
		for (size_t k = 0; k < snap->locations[i].n_nets; k++)
			if (cidr_tree_insert(snap->location_tree, &snap->locations[i].nets[k],
			                     (uint32_t)i) < 0)
				return sg_err_set(err, "out of memory building the location tree");

	if (b->n_policies > 1)
		qsort(b->policies, b->n_policies, sizeof(b->policies[0]), compare_policy_defs);
	snap->policies = xcalloc(b->n_policies ? b->n_policies : 1, sizeof(*snap->policies));
	policy_index = hash_create(b->n_policies);
	for (size_t i = 0; i < b->n_policies; i++) {
		void **slot = hash_slot(policy_index, b->policies[i].name);

		if (*slot != NULL) {
			hash_free(&policy_index, NULL);
			return sg_err_set(err, "policy %s: defined twice", b->policies[i].name);
		}
		*slot = IDX_TO_PTR(i);
		snap->n_policies++;
		if (compile_policy(snap, b, &b->policies[i], &snap->policies[i], err) < 0) {
			hash_free(&policy_index, NULL);
			return -1;
		}
	}

	snap->exceptions =
	    xcalloc(b->n_exceptions ? b->n_exceptions : 1, sizeof(*snap->exceptions));
	snap->by_location =
	    xcalloc(snap->n_locations ? snap->n_locations : 1, sizeof(*snap->by_location));
	snap->n_by_location = xcalloc(snap->n_locations ? snap->n_locations : 1, sizeof(size_t));
	loc_caps = xcalloc(snap->n_locations ? snap->n_locations : 1, sizeof(size_t));
	for (size_t i = 0; i < b->n_exceptions && rc == 0; i++) {
		snap->n_exceptions++;
		rc = compile_exception(snap, b, policy_index, &b->exceptions[i],
		                       &snap->exceptions[i], loc_caps, err);
	}
	free(loc_caps);
	hash_free(&policy_index, NULL);
	return rc;
}

static void snapshot_destroy(struct snapshot *snap)
{
	hash_free(&snap->catalogue, NULL);
	free_locations(snap->locations, snap->n_locations);
	cidr_tree_free(&snap->location_tree);
	for (size_t i = 0; i < snap->n_policies; i++) {
		struct sn_policy *p = &snap->policies[i];

		free(p->name);
		mech_filter_free(&p->mechs);
		free(p->mechs_text);
		userindex_free(&p->include_users);
		userindex_free(&p->exclude_users);
		free(p->include_locations);
		free(p->exclude_locations);
		for (size_t k = 0; k < p->n_services; k++)
			free(p->services[k]);
		free(p->services);
		free(p->reply_text);
	}
	free(snap->policies);
	for (size_t i = 0; i < snap->n_exceptions; i++)
		mech_filter_free(&snap->exceptions[i].mechs);
	free(snap->exceptions);
	userindex_free(&snap->exception_users);
	if (snap->by_location != NULL)
		for (size_t i = 0; i < snap->n_locations; i++)
			free(snap->by_location[i]);
	free(snap->by_location);
	free(snap->n_by_location);
	free_groups(snap->groups, snap->n_groups);
	free(snap);
}

struct snapshot *snapshot_builder_finish(struct snapshot_builder **bp, struct sg_err *err)
{
	struct snapshot_builder *b = *bp;
	struct snapshot *snap = xcalloc(1, sizeof(*snap));

	snap->refs = 1;
	snap->generation = b->generation;
	snap->unknown_class = b->unknown_class;
	snap->catalogue = b->catalogue;
	b->catalogue = NULL;
	snap->groups = b->groups;
	snap->n_groups = b->n_groups;
	b->groups = NULL;
	b->n_groups = 0;
	snap->locations = b->locations;
	snap->n_locations = b->n_locations;
	b->locations = NULL;
	b->n_locations = 0;
	snap->location_tree = cidr_tree_create();
	snap->exception_users = userindex_create_sized(b->n_exceptions);
	if (compile(snap, b, err) < 0) {
		snapshot_destroy(snap);
		snap = NULL;
	}
	snapshot_builder_free(bp);
	return snap;
}

/* ------------------------------------------------------------------ refs */

struct snapshot *snapshot_ref(struct snapshot *snap)
{
	__atomic_add_fetch(&snap->refs, 1, __ATOMIC_RELAXED);
	return snap;
}

/* Freeing a snapshot of 100,000 exceptions takes 25-50 ms; in a daemon the
 * last reference is often dropped by the request path, just after a rebuild.
 * With free_aside set, a snapshot with more exceptions than this is freed by
 * a thread of its own. */
#define FREE_ASIDE_EXCEPTIONS 10000

static int free_aside;

void snapshot_set_free_aside(int on)
{
	free_aside = on;
}

static void *destroy_main(void *arg)
{
	snapshot_destroy(arg);
	return NULL;
}

static void destroy_aside(struct snapshot *snap)
{
	pthread_attr_t attr;
	pthread_t thread;
	int rc = -1;

	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&thread, &attr, destroy_main, snap);
		pthread_attr_destroy(&attr);
	}
	if (rc != 0)
		snapshot_destroy(snap);
}

void snapshot_unref(struct snapshot **sp)
{
	struct snapshot *snap = *sp;

	if (snap == NULL)
		return;
	*sp = NULL;
	if (__atomic_sub_fetch(&snap->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (free_aside && snap->n_exceptions > FREE_ASIDE_EXCEPTIONS)
		destroy_aside(snap);
	else
		snapshot_destroy(snap);
}

int64_t snapshot_generation(const struct snapshot *snap)
{
	return snap->generation;
}

size_t snapshot_policy_count(const struct snapshot *snap)
{
	return snap->n_policies;
}

size_t snapshot_exception_count(const struct snapshot *snap)
{
	return snap->n_exceptions;
}

size_t snapshot_location_count(const struct snapshot *snap)
{
	return snap->n_locations;
}

enum mech_class snapshot_mech_class(const struct snapshot *snap, const char *mech)
{
	char lower[MECH_NAME_MAX + 1];
	void *v;

	if (sg_lower(lower, mech, sizeof(lower)) >= sizeof(lower))
		return snap->unknown_class;
	v = hash_get(snap->catalogue, lower);
	return v != NULL ? (enum mech_class)PTR_TO_IDX(v) : snap->unknown_class;
}
