// SPDX-License-Identifier: MIT
/*
 * The policy registry: finds a policy by name (built-in, or registered at
 * run time through upager_policy_register()), splits "name:params", and
 * offers the parameter parsing every policy needs. Adding a built-in
 * policy is one file and one line in the table below.
 */
#include "internal.h"
#include "policy.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const struct policy_ops *const builtin[] = {
	&upager__policy_fifo,  &upager__policy_random,   &upager__policy_clock,
	&upager__policy_lru,   &upager__policy_lfu,      &upager__policy_2q,
	&upager__policy_arc,   &upager__policy_car,      &upager__policy_s3fifo,
	&upager__policy_sieve, &upager__policy_clockpro,
};

/* Registered policies: appended under the lock, never removed, so a
 * pointer read from the table stays valid. */
#define MAX_REGISTERED 64
static const struct policy_ops *registered[MAX_REGISTERED];
static size_t nregistered;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static bool name_is(const struct policy_ops *ops, const char *name, size_t len)
{
	return strlen(ops->name) == len && !strncmp(ops->name, name, len);
}

const struct policy_ops *policy_find(const char *name, size_t len)
{
	const struct policy_ops *found = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++)
		if (name_is(builtin[i], name, len))
			return builtin[i];
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < nregistered && !found; i++)
		if (name_is(registered[i], name, len))
			found = registered[i];
	pthread_mutex_unlock(&registry_lock);
	return found;
}

static bool valid_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	/* It must fit upager_stats_t.policy, and "opt" is the simulator's. */
	if (len == 0 || len > 31 || !strcmp(name, "opt"))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

UPAGER_API int upager_policy_register(const upager_policy_ops_t *ops)
{
	int ret = 0;

	if (!ops || ops->abi != UPAGER_POLICY_ABI ||
	    ops->size < offsetof(upager_policy_ops_t, flags))
		return upager__fail(-EINVAL, "policy ops: wrong ABI version or size");
	if (ops->name && !strcmp(ops->name, "opt"))
		return upager__fail(-EEXIST, "policy name 'opt' is reserved for Belady's OPT");
	if (!valid_name(ops->name))
		return upager__fail(-EINVAL, "policy name must be 1-31 characters of [a-z0-9_-]");
	if (!ops->create || !ops->destroy || !ops->insert || !ops->reference || !ops->remove ||
	    !ops->victim)
		return upager__fail(-EINVAL, "policy '%s' lacks a mandatory hook", ops->name);
	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++)
		if (!strcmp(builtin[i]->name, ops->name))
			return upager__fail(-EEXIST, "policy '%s' is built in", ops->name);
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < nregistered; i++)
		if (!strcmp(registered[i]->name, ops->name))
			ret = upager__fail(-EEXIST, "policy '%s' is already registered", ops->name);
	if (!ret && nregistered == MAX_REGISTERED)
		ret = upager__fail(-ENOSPC, "too many registered policies (%d)", MAX_REGISTERED);
	if (!ret)
		registered[nregistered++] = ops;
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

UPAGER_API size_t upager_policy_list(const upager_policy_ops_t **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++, n++)
		if (n < max)
			out[n] = builtin[i];
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < nregistered; i++, n++)
		if (n < max)
			out[n] = registered[i];
	pthread_mutex_unlock(&registry_lock);
	return n;
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
	upager__clear_error();
	err = ops->create(&pol->env, params, &pol->state);
	if (err) {
		free(pol);
		/* A policy from outside may answer bad parameters with -EINVAL. */
		if (err == -EINVAL)
			err = UPAGER_EPOLICY;
		if (err == UPAGER_EPOLICY && !upager_last_error()[0])
			upager__fail(err, "bad parameters for policy '%s': '%s'", ops->name,
				     params);
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

/*
 * The one number parser behind every parameter: the value of key as an
 * unsigned integer (C syntax, so 0x.. works) if u is given, else as a real.
 * Returns 1 and sets *d or *u, 0 if key is absent, -1 if the value is
 * empty, too long, not all a number, negative for an integer, or out of
 * the type's range.
 */
static int param_parse(const char *params, const char *key, double *d, uint64_t *u)
{
	size_t vlen;
	const char *v = param_value(params, key, &vlen);
	char buf[64], *end;

	if (!v)
		return 0;
	if (vlen == 0 || vlen >= sizeof(buf))
		return -1;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	errno = 0;
	if (u) {
		if (strchr(buf, '-'))
			return -1;
		*u = strtoull(buf, &end, 0);
	} else {
		*d = strtod(buf, &end);
	}
	return *end || errno ? -1 : 1;
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

int policy_param_fraction(const char *policy, const char *params, const char *key, double def,
			  double lo, double hi, double *out)
{
	int found = param_parse(params, key, out, NULL);

	if (!found)
		*out = def;
	else if (found < 0 || !(*out >= lo && *out <= hi))
		return upager__fail(UPAGER_EPOLICY, "policy %s: %s must be a number in [%g, %g]",
				    policy, key, lo, hi);
	return 0;
}

int policy_param_range(const char *policy, const char *params, const char *key, uint64_t def,
		       uint64_t lo, uint64_t hi, uint64_t *out)
{
	int found = param_parse(params, key, NULL, out);

	if (!found)
		*out = def;
	else if (found < 0 || *out < lo || *out > hi)
		return upager__fail(UPAGER_EPOLICY,
				    "policy %s: %s must be an integer in [%llu, %llu]", policy, key,
				    (unsigned long long)lo, (unsigned long long)hi);
	return 0;
}
