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
	&upager__fault_sigsegv,
};

int upager__fault_select(struct upager *p)
{
	const char *want = p->cfg.backend;
	bool any = !strcmp(want, "auto");
	char why[1024] = "";
	char reasons[1200] = "";
	int err = UPAGER_EBACKEND, last_err = UPAGER_EBACKEND;

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
				if (!any)
					snprintf(p->backend_why, sizeof(p->backend_why),
						 "asked for by name");
				else if (reasons[0])
					snprintf(p->backend_why, sizeof(p->backend_why),
						 "auto: %s", reasons);
				else
					snprintf(p->backend_why, sizeof(p->backend_why),
						 "auto: first choice, usable here");
				if (p->backend_note[0]) {
					size_t used = strlen(p->backend_why);
					snprintf(p->backend_why + used, sizeof(p->backend_why) - used,
						 "; %s", p->backend_note);
				}
				if (p->map_cap) {
					size_t used = strlen(p->backend_why);
					snprintf(p->backend_why + used, sizeof(p->backend_why) - used,
						 "; at most %llu pages mapped at once (vm.max_map_count)",
						 (unsigned long long)p->map_cap);
				}
				return 0;
			}
			snprintf(why, sizeof(why), "%s", upager_last_error());
		}
		last_err = err;
		size_t used = strlen(reasons);
		snprintf(reasons + used, sizeof(reasons) - used, "%s%s unusable (%s)",
			 used ? "; " : "", be->name, why);
	}
	p->backend = NULL;
	/* A specific reason (the mapping limit, say) says more than "no
	 * backend"; the message lists every backend tried either way. */
	if (last_err != UPAGER_EMAPCOUNT)
		last_err = UPAGER_EBACKEND;
	return upager__fail(last_err, "no usable fault backend: %s",
			    reasons[0] ? reasons : "none built");
}
