// SPDX-License-Identifier: MIT
/*
 * FIFO: first in, first out.
 *
 * Pages queue up in the order they were brought in; the victim is always
 * the page that has been resident longest, whatever happened to it since.
 * References are ignored.
 *
 *   insert -> [newest] ... [oldest] -> victim
 *
 * FIFO is the classic example of Belady's anomaly: on some reference
 * strings more frames give more faults.
 */
#include "internal.h"
#include "keymap.h"
#include "policy.h"

#include <errno.h>
#include <stdlib.h>

struct fifo {
	struct plist q;
	struct plink *link;
	uint8_t *in; /* per frame: on the queue */
};

static void fifo_destroy(void *state)
{
	struct fifo *f = state;

	free(f->link);
	free(f->in);
	free(f);
}

static int fifo_create(const struct policy_env *env, const char *params, void **state)
{
	struct fifo *f;
	int err = policy_params_check(params, NULL);

	if (err)
		return err;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->link = calloc(env->nframes, sizeof(*f->link));
	f->in = calloc(env->nframes, 1);
	if (!f->link || !f->in) {
		fifo_destroy(f);
		return -ENOMEM;
	}
	plist_init(&f->q);
	*state = f;
	return 0;
}

static void fifo_insert(void *state, uint32_t frame, uint64_t key, bool write)
{
	struct fifo *f = state;

	if (f->in[frame])
		plist_del(&f->q, f->link, frame);
	plist_push_head(&f->q, f->link, frame);
	f->in[frame] = 1;
}

static void fifo_reference(void *state, uint32_t frame, bool write)
{
}

static void fifo_remove(void *state, uint32_t frame, enum policy_remove_reason why)
{
	struct fifo *f = state;

	if (f->in[frame])
		plist_del(&f->q, f->link, frame);
	f->in[frame] = 0;
}

static int64_t fifo_victim(void *state)
{
	struct fifo *f = state;

	return f->q.tail == PNIL ? -1 : (int64_t)f->q.tail;
}

const struct policy_ops upager__policy_fifo = {
	.abi = UPAGER_POLICY_ABI,
	.size = sizeof(struct policy_ops),
	.name = "fifo",
	.summary = "first in, first out: evict the page resident longest",
	.create = fifo_create,
	.destroy = fifo_destroy,
	.insert = fifo_insert,
	.reference = fifo_reference,
	.remove = fifo_remove,
	.victim = fifo_victim,
};
