// SPDX-License-Identifier: MIT
/*
 * Choosing the fault backend. "auto" takes the first backend in the table
 * whose probe succeeds here; a name forces that backend and fails at open
 * if it cannot run. The reason for the choice is kept for the statistics.
 */
#include "internal.h"
#include "fault.h"

#include <stdio.h>
#include <string.h>

static const struct fault_backend *const backends[] = {
#ifdef HAVE_LINUX_USERFAULTFD_H
	&upager__fault_uffd,
#endif
};

int upager__fault_select(struct upager *p)
{
	const char *want = p->cfg.backend;
	bool any = !strcmp(want, "auto");
	char why[200] = "";
	char reasons[400] = "";
	int err = UPAGER_EBACKEND;

	if (!any) {
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
			known |= !strcmp(backends[i]->name, want);
		if (!known)
			return upager__fail(UPAGER_EBACKEND,
					    "unknown fault backend '%s' (try auto, uffd or sigsegv)",
					    want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
		const struct fault_backend *be = backends[i];

		if (!any && strcmp(be->name, want))
			continue;
		why[0] = '\0';
		err = be->probe(&p->cfg, why, sizeof(why));
		if (err == 0) {
			p->backend = be;
			err = be->init(p);
			if (err == 0) {
				snprintf(p->backend_why, sizeof(p->backend_why), "%s%s%s",
					 any ? "auto: " : "asked for", any ? "" : " by name",
					 reasons[0] ? reasons : (any ? "first usable backend" : ""));
				return 0;
			}
			snprintf(why, sizeof(why), "%s", upager_last_error());
		}
		size_t used = strlen(reasons);
		snprintf(reasons + used, sizeof(reasons) - used, "%s%s unusable (%s)",
			 used ? "; " : "", be->name, why);
	}
	p->backend = NULL;
	return upager__fail(UPAGER_EBACKEND, "no usable fault backend: %s",
			    reasons[0] ? reasons : "none built");
}
