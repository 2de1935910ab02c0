// SPDX-License-Identifier: MIT
/*
 * The Clock policy on hand-made reference strings (white-box), with the
 * answers worked out by hand in the comments, and the aging calls it makes
 * to the host.
 */
#include "testutil.h"
#include "internal.h"
#include "policy.h"

static unsigned aged[64], naged;

static void record_age(void *host, uint32_t frame)
{
	aged[naged++ % 64] = frame;
}

int main(void)
{
	struct policy *pol;
	CHECK_OK(policy_create("clock", 3, record_age, NULL, &pol));
	void *s = pol->state;
	const struct policy_ops *o = pol->ops;

	CHECK_EQ(o->victim(s), -1); /* nothing resident */
	o->insert(s, 0, 100, false);
	o->insert(s, 1, 101, false);
	o->insert(s, 2, 102, false);
	/* All three referenced: the hand clears 0, 1, 2 (three agings) and
	 * comes back to 0. */
	CHECK_EQ(o->victim(s), 0);
	CHECK_EQ(naged, 3);
	CHECK_EQ(aged[0], 0);
	CHECK_EQ(aged[2], 2);
	o->remove(s, 0, POLICY_EVICTED);
	o->insert(s, 0, 103, false); /* new page in frame 0, referenced */
	o->reference(s, 1, false);
	/* Hand at 1: referenced -> cleared; 2 is not -> victim 2. */
	CHECK_EQ(o->victim(s), 2);
	CHECK_EQ(naged, 4);
	CHECK_EQ(aged[3], 1);
	o->remove(s, 2, POLICY_FREED);
	/* Hand at 0 (after 2): 0 referenced -> cleared; 1 clear -> victim 1. */
	CHECK_EQ(o->victim(s), 1);
	o->remove(s, 1, POLICY_EVICTED);
	/* Only frame 0 left, its bit cleared: victim 0 without aging. */
	unsigned before = naged;
	CHECK_EQ(o->victim(s), 0);
	CHECK_EQ(naged, before);
	o->remove(s, 0, POLICY_EVICTED);
	CHECK_EQ(o->victim(s), -1);
	policy_destroy(pol);

	CHECK_ERR(policy_create("clock:x=1", 3, record_age, NULL, &pol), UPAGER_EPOLICY);
	printf("clock: all checks passed\n");
	return 0;
}
