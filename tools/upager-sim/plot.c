// SPDX-License-Identifier: MIT
/*
 * The miss-ratio chart of upager-sim: plain SVG written by hand (no
 * dependency), readable in any browser. The x axis is linear, or
 * logarithmic when the sizes span more than a factor of 50; the y axis
 * runs from 0 to a round number above the largest miss ratio.
 */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define W 860
#define H 520
#define ML 80 /* margins */
#define MR 190
#define MT 50
#define MB 70

static const char *const colors[] = {
	"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
	"#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8",
};

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
	}
}

/* A round step giving about n ticks over span. */
static double nice_step(double span, int n)
{
	double raw = span / n, mag = pow(10, floor(log10(raw)));
	double r = raw / mag;

	return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

int plot_svg(const char *path, const char *title, const uint32_t *sizes, size_t nsizes,
	     const struct plot_series *series, size_t nseries)
{
	double xmin = sizes[0], xmax = sizes[0], ymax = 0;
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	for (size_t i = 0; i < nsizes; i++) {
		xmin = sizes[i] < xmin ? sizes[i] : xmin;
		xmax = sizes[i] > xmax ? sizes[i] : xmax;
		for (size_t s = 0; s < nseries; s++)
			ymax = series[s].y[i] > ymax ? series[s].y[i] : ymax;
	}
	bool logx = xmin > 0 && xmax / xmin > 50;
	double ystep = nice_step(ymax > 0 ? ymax : 1, 5);
	double ytop = ceil((ymax > 0 ? ymax : 1) / ystep) * ystep;
	if (ytop > 100)
		ytop = 100;
	if (xmax == xmin) {
		xmin = xmin > 1 ? xmin - 1 : 0;
		xmax += 1;
		logx = false;
	}
	double pw = W - ML - MR, ph = H - MT - MB;
#define XPOS(v)                                                           \
	(ML + pw * (logx ? (log(v) - log(xmin)) / (log(xmax) - log(xmin)) \
			 : ((v)-xmin) / (xmax - xmin)))
#define YPOS(v) (MT + ph * (1 - (v) / ytop))

	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"13\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
		W, H, W, H);
	fprintf(f, "<text x=\"%g\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", ML + pw / 2);
	xml_text(f, title);
	fputs("</text>\n", f);

	/* Grid and y ticks. */
	for (double y = 0; y <= ytop + 1e-9; y += ystep) {
		fprintf(f,
			"<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			ML, YPOS(y), ML + pw, YPOS(y));
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 8,
			YPOS(y) + 4, y);
	}
	/* x ticks: at the simulated sizes when few, else round values. */
	if (nsizes <= 12) {
		for (size_t i = 0; i < nsizes; i++) {
			fprintf(f,
				"<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n",
				XPOS(sizes[i]), MT + (int)ph, XPOS(sizes[i]), MT + (int)ph + 5);
			fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%u</text>\n",
				XPOS(sizes[i]), MT + (int)ph + 20, sizes[i]);
		}
	} else {
		double step = nice_step(xmax - xmin, 6);
		for (double x = ceil(xmin / step) * step; x <= xmax + 1e-9; x += step) {
			fprintf(f,
				"<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n",
				XPOS(x), MT + (int)ph, XPOS(x), MT + (int)ph + 5);
			fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
				XPOS(x), MT + (int)ph + 20, x);
		}
	}
	/* Axes and their labels. */
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", ML, MT, ML,
		MT + (int)ph);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", ML,
		MT + (int)ph, ML + pw, MT + (int)ph);
	fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">cache size (pages%s)</text>\n",
		ML + pw / 2, H - 20, logx ? ", log scale" : "");
	fprintf(f,
		"<text x=\"22\" y=\"%.1f\" text-anchor=\"middle\" "
		"transform=\"rotate(-90 22 %.1f)\">miss ratio (%%)</text>\n",
		MT + ph / 2, MT + ph / 2);

	/* One line per policy, with markers, and the legend. */
	for (size_t s = 0; s < nseries; s++) {
		const char *c = colors[s % (sizeof(colors) / sizeof(colors[0]))];
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
		for (size_t i = 0; i < nsizes; i++)
			fprintf(f, "%s%.1f,%.1f", i ? " " : "", XPOS(sizes[i]),
				YPOS(series[s].y[i]));
		fputs("\"/>\n", f);
		for (size_t i = 0; i < nsizes; i++)
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
				XPOS(sizes[i]), YPOS(series[s].y[i]), c);
		double ly = MT + 10 + 22.0 * (double)s;
		fprintf(f,
			"<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" "
			"stroke-width=\"3\"/>\n",
			W - MR + 20, ly, W - MR + 50, ly, c);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\">", W - MR + 58, ly + 4);
		xml_text(f, series[s].name);
		fputs("</text>\n", f);
	}
	fputs("</svg>\n", f);
	if (fclose(f))
		return -errno;
	return 0;
}
