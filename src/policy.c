// SPDX-License-Identifier: MIT
/*
 * The policy registry: finds a policy by name, splits "name:params", and
 * offers the parameter parsing every policy needs. Adding a built-in
 * policy is one file and one line in the table below.
 */
#include "internal.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct policy_ops *const builtin[] = {
	&upager__policy_clock,
};

const struct policy_ops *policy_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++)
		if (strlen(builtin[i]->name) == len && !strncmp(builtin[i]->name, name, len))
			return builtin[i];
	return NULL;
}

int policy_create(const char *spec, uint32_t nframes, void (*age)(void *, uint32_t), void *host,
		  struct policy **out)
{
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *params = colon ? colon + 1 : "";
	const struct policy_ops *ops = policy_find(spec, len);
	struct policy *pol;
	int err;

	if (!ops)
		return upager__fail(UPAGER_EPOLICY, "unknown policy '%.*s'", (int)len, spec);
	pol = calloc(1, sizeof(*pol));
	if (!pol)
		return -ENOMEM;
	pol->ops = ops;
	pol->env.nframes = nframes;
	pol->env.age = age;
	pol->env.host = host;
	pol->env.seed = 0x9e3779b97f4a7c15ULL ^ nframes;
	err = ops->create(&pol->env, params, &pol->state);
	if (err) {
		free(pol);
		if (err == UPAGER_EPOLICY && !upager_last_error()[0])
			upager__fail(err, "bad parameters for policy '%s': '%s'", ops->name, params);
		return err;
	}
	*out = pol;
	return 0;
}

void policy_destroy(struct policy *pol)
{
	if (!pol)
		return;
	pol->ops->destroy(pol->state);
	free(pol);
}

/* Finds "key=" at the start of a comma-separated item; returns the value. */
static const char *param_value(const char *params, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *p = params;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			*vlen = len - klen - 1;
			return p + klen + 1;
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

bool policy_param_double(const char *params, const char *key, double *out)
{
	size_t vlen;
	const char *v = param_value(params, key, &vlen);
	char buf[64], *end;

	if (!v || vlen == 0 || vlen >= sizeof(buf))
		return false;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	double d = strtod(buf, &end);
	if (*end)
		return false;
	*out = d;
	return true;
}

bool policy_param_u64(const char *params, const char *key, uint64_t *out)
{
	size_t vlen;
	const char *v = param_value(params, key, &vlen);
	char buf[64], *end;

	if (!v || vlen == 0 || vlen >= sizeof(buf))
		return false;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	errno = 0;
	unsigned long long n = strtoull(buf, &end, 0);
	if (*end || errno)
		return false;
	*out = n;
	return true;
}

int policy_params_check(const char *params, const char *const *keys)
{
	const char *p = params;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		bool known = false;
		if (eq) {
			for (size_t i = 0; keys && keys[i]; i++)
				if (strlen(keys[i]) == (size_t)(eq - p) &&
				    !strncmp(p, keys[i], (size_t)(eq - p)))
					known = true;
		}
		if (!known)
			return upager__fail(UPAGER_EPOLICY, "unknown policy parameter '%.*s'",
					    (int)len, p);
		p = end ? end + 1 : NULL;
	}
	return 0;
}
