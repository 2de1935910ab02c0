// SPDX-License-Identifier: MIT
/*
 * What the fault backends share: choosing one ("auto" takes the first
 * backend in the table whose probe succeeds here; a name forces that
 * backend and fails at open if it cannot run; the reason for the choice
 * is kept for the statistics), reading a fault's access from a signal's
 * context, and zapping many ranges of the views in one system call.
 */
#include "internal.h"
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

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
			return upager__fail(
				UPAGER_EBACKEND,
				"unknown fault backend '%s' (try auto, uffd or sigsegv)", want);
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
					/* The reasons may be longer than the field: cut them. */
					snprintf(p->backend_why, sizeof(p->backend_why),
						 "auto: %.*s",
						 (int)(sizeof(p->backend_why) - sizeof("auto: ")),
						 reasons);
				else
					snprintf(p->backend_why, sizeof(p->backend_why),
						 "auto: first choice, usable here");
				if (p->backend_note[0]) {
					size_t used = strlen(p->backend_why);
					snprintf(p->backend_why + used,
						 sizeof(p->backend_why) - used, "; %s",
						 p->backend_note);
				}
				if (p->map_cap) {
					size_t used = strlen(p->backend_why);
					snprintf(
						p->backend_why + used,
						sizeof(p->backend_why) - used,
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

bool upager__fault_is_write(void *ucontext)
{
#if defined(__x86_64__)
	ucontext_t *uc = ucontext;
	return (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0; /* PF_WRITE */
#else
	/* Unknown: a read taken for a write only costs a needless writeback. */
	(void)ucontext;
	return true;
#endif
}

/* ---- zapping ---- */

void upager__zap_add(struct upager *p, struct zap_list *z, struct region *r, uint64_t pg,
		     uint64_t n, bool pager_view)
{
	size_t len = (size_t)n << p->page_shift;

	if (z->n && z->r == r && z->next_pg == pg && z->pager_view == pager_view) {
		z->iov[z->n - 1].iov_len += len;
	} else {
		char *base = pager_view ? region_pview(r, pg) : region_page_addr(r, pg);
		z->iov[z->n++] = (struct iovec){ base, len };
		z->r = r;
		z->pager_view = pager_view;
	}
	z->next_pg = pg + n;
}

int upager__zap_list(struct upager *p, struct zap_list *z)
{
	int ret = z->n ? upager__zap(p, z->iov, z->n) : 0;

	z->n = 0;
	return ret;
}

int upager__zap(struct upager *p, struct iovec *iov, unsigned n)
{
	return upager__advise_ranges(p, iov, n, MADV_DONTNEED);
}

int upager__advise_ranges(struct upager *p, struct iovec *iov, unsigned n, int advice)
{
	unsigned done = 0;

	/* A forked child has other page tables than the pidfd names. */
	while (done < n && getpid() == p->self_pid) {
		int fd = atomic_load_explicit(&p->self_pidfd, memory_order_relaxed);
		if (fd < 0)
			break;
		unsigned k = n - done < 1024 ? n - done : 1024; /* the kernel's UIO_MAXIOV */
		ssize_t got = syscall(SYS_process_madvise, fd, iov + done, (size_t)k, advice, 0u);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == EINVAL || errno == ENOSYS || errno == EPERM) {
				/* Before Linux 6.13 only some advice went
				 * through process_madvise(); the descriptor
				 * stays open until close, another thread may
				 * be using it. */
				atomic_store_explicit(&p->self_pidfd, -1, memory_order_relaxed);
				break;
			}
			return -errno;
		}
		/* It may stop early: go on after what it did. */
		while (done < n && (size_t)got >= iov[done].iov_len)
			got -= (ssize_t)iov[done++].iov_len;
		if (got > 0) {
			iov[done].iov_base = (char *)iov[done].iov_base + got;
			iov[done].iov_len -= (size_t)got;
		}
	}
	for (; done < n; done++)
		if (madvise(iov[done].iov_base, iov[done].iov_len, advice) < 0)
			return -errno;
	return 0;
}
