/* SPDX-License-Identifier: MIT */
/* Miss-ratio curves as an SVG file. */
#ifndef UPAGER_SIM_PLOT_H
#define UPAGER_SIM_PLOT_H

#include <stddef.h>
#include <stdint.h>

struct plot_series {
	const char *name;
	const double *y; /* miss ratio in percent, one per size */
};

/*
 * Writes an SVG line chart to path: x = cache size (pages), y = miss
 * ratio (%), one line per series, with axes, ticks, labels, a title and a
 * legend. Returns 0 or -errno.
 */
int plot_svg(const char *path, const char *title, const uint32_t *sizes, size_t nsizes,
	     const struct plot_series *series, size_t nseries);

#endif
