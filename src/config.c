// SPDX-License-Identifier: MIT
/*
 * Configuration: defaults, the UPAGER_* environment, and the checks that
 * make a bad configuration fail at open with its own error rather than
 * later inside a fault.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

UPAGER_API int upager_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (shift) {
		end++;
		/* Accept "64K", "64KB", "64KiB". */
		if (toupper((unsigned char)end[0]) == 'I' && toupper((unsigned char)end[1]) == 'B')
			end += 2;
		else if (toupper((unsigned char)end[0]) == 'B')
			end++;
	}
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static void env_bad(upager_config_t *cfg, const char *var, const char *val, const char *want)
{
	if (cfg->env_error[0])
		return; /* keep the first one */
	snprintf(cfg->env_error, sizeof(cfg->env_error), "%s='%.40s' is not %s", var, val, want);
}

static void env_size(upager_config_t *cfg, const char *var, size_t *field)
{
	const char *v = getenv(var);
	uint64_t n;

	if (!v)
		return;
	if (upager_parse_size(v, &n) < 0 || n > SIZE_MAX) {
		env_bad(cfg, var, v, "a size (like 4096, 64K, 512M, 2G)");
		return;
	}
	*field = (size_t)n;
}

static void env_uint(upager_config_t *cfg, const char *var, unsigned *field)
{
	const char *v = getenv(var);
	char *end;
	unsigned long n;

	if (!v)
		return;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n > 1u << 24) {
		env_bad(cfg, var, v, "a small non-negative integer");
		return;
	}
	*field = (unsigned)n;
}

static void env_bool(upager_config_t *cfg, const char *var, int *field)
{
	const char *v = getenv(var);

	if (!v)
		return;
	if (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
	    !strcasecmp(v, "true"))
		*field = 1;
	else if (!strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
		 !strcasecmp(v, "false"))
		*field = 0;
	else
		env_bad(cfg, var, v, "0 or 1");
}

static void env_double(upager_config_t *cfg, const char *var, double *field)
{
	const char *v = getenv(var);
	char *end;
	double d;

	if (!v)
		return;
	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || !(d >= 0 && d <= 64)) {
		env_bad(cfg, var, v, "a number from 0 to 64");
		return;
	}
	*field = d;
}

/* The defaults and the environment, into a whole struct of ours. */
void upager__config_defaults(upager_config_t *cfg)
{
	const char *v;
	size_t swap_max;

	memset(cfg, 0, sizeof(*cfg));
	cfg->size = sizeof(*cfg);
	cfg->version = UPAGER_CONFIG_VERSION;
	cfg->ram_bytes = 256UL << 20;
	cfg->page_size = 4096;
	cfg->backend = "auto";
	cfg->policy = "clock";
	cfg->mode = UPAGER_MODE_TRANSPARENT;
	cfg->direct_io = 1;
	cfg->evict_batch = 0; /* automatic: upager_open() sizes it to the budget */
	cfg->sample_rate = 1;

	env_size(cfg, "UPAGER_RAM", &cfg->ram_bytes);
	env_size(cfg, "UPAGER_PAGE_SIZE", &cfg->page_size);
	if ((v = getenv("UPAGER_SWAP")) && *v)
		cfg->swap_path = v;
	swap_max = (size_t)cfg->swap_max;
	env_size(cfg, "UPAGER_SWAP_MAX", &swap_max);
	cfg->swap_max = swap_max;
	if ((v = getenv("UPAGER_BACKEND")) && *v)
		cfg->backend = v;
	if ((v = getenv("UPAGER_POLICY")) && *v)
		cfg->policy = v;
	if ((v = getenv("UPAGER_MODE")) && *v) {
		if (!strcmp(v, "transparent"))
			cfg->mode = UPAGER_MODE_TRANSPARENT;
		else if (!strcmp(v, "fast"))
			cfg->mode = UPAGER_MODE_FAST;
		else
			env_bad(cfg, "UPAGER_MODE", v, "'transparent' or 'fast'");
	}
	env_uint(cfg, "UPAGER_THREADS", &cfg->handler_threads);
	env_bool(cfg, "UPAGER_DIRECT_IO", &cfg->direct_io);
	env_uint(cfg, "UPAGER_EVICT_BATCH", &cfg->evict_batch);
	env_uint(cfg, "UPAGER_FREE_LOW", &cfg->free_low);
	env_uint(cfg, "UPAGER_FREE_HIGH", &cfg->free_high);
	env_bool(cfg, "UPAGER_STATS", &cfg->print_stats);
	env_double(cfg, "UPAGER_SAMPLE", &cfg->sample_rate);
	if ((v = getenv("UPAGER_TRACE")) && *v)
		cfg->trace_path = v;
	env_uint(cfg, "UPAGER_TRACE_INTERVAL", &cfg->trace_interval_us);
}

UPAGER_API void upager_config_init_sized(upager_config_t *cfg, size_t size)
{
	upager_config_t full;

	/* A caller's struct may be older and smaller than ours: fill it
	 * from a whole one, no further than it goes. */
	if (!cfg || size < UPAGER__STRUCT_MIN_SIZE)
		return;
	upager__config_defaults(&full);
	if (size > sizeof(full))
		size = sizeof(full);
	full.size = (uint32_t)size;
	memcpy(cfg, &full, size);
}

/* The symbol that programs built before upager_config_init_sized() call:
 * their struct is at least version 2's. */
#undef upager_config_init
UPAGER_API void upager_config_init(upager_config_t *cfg)
{
	upager_config_init_sized(cfg, UPAGER__CONFIG_V2_SIZE);
}

_Static_assert(sizeof(upager_config_t) >= UPAGER__CONFIG_V2_SIZE &&
		       sizeof(upager_stats_t) >= UPAGER__STATS_V2_SIZE,
	       "the public structs only grow");
