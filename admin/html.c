/*
 * html - HTML escaping and inline SVG charts (see html.h).
 */
#include <inttypes.h>
#include <string.h>

#include "html.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* The length of the valid UTF-8 sequence at p (2..4), or 0. */
static size_t utf8_sequence(const unsigned char *p)
{
	unsigned cp;
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07u;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp < 0xe000) || (cp >= 0x80 && cp < 0xa0))
		return 0; /* overlong, out of range, a surrogate, a C1 control */
	return n;
}

void html_text(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL)
		return;
	while (*p) {
		size_t n;

		switch (*p) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		default:
			if (*p == '\t' || *p == '\n' || (*p >= 0x20 && *p < 0x7f)) {
				fputc(*p, out);
			} else if (*p >= 0x80 && (n = utf8_sequence(p)) > 0) {
				fwrite(p, 1, n, out);
				p += n;
				continue;
			} else {
				fputs(REPLACEMENT, out);
			}
		}
		p++;
	}
}

void html_elem(FILE *out, const char *tag, const char *cls, const char *s)
{
	if (cls != NULL)
		fprintf(out, "<%s class=\"%s\">", tag, cls);
	else
		fprintf(out, "<%s>", tag);
	html_text(out, s);
	fprintf(out, "</%s>", tag);
}

const char *html_count(int64_t v, char *buf, size_t len)
{
	char digits[32];
	size_t n, o = 0;
	int neg = v < 0;

	if (len < 32) {
		if (len > 0)
			buf[0] = '\0';
		return buf;
	}
	snprintf(digits, sizeof(digits), "%" PRIu64, neg ? -(uint64_t)v : (uint64_t)v);
	n = strlen(digits);
	if (neg)
		buf[o++] = '-';
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

const char *html_percent(int64_t part, int64_t whole, char *buf, size_t len)
{
	if (whole <= 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", 100.0 * (double)part / (double)whole);
	return buf;
}

/* ---------------------------------------------------------------- charts */

#define CHART_W      640.0
#define PLOT_H       220.0
#define MARGIN_L     58.0
#define MARGIN_R     12.0
#define MARGIN_B     46.0
#define LEGEND_ROW   20.0
#define FONT_AXIS    12
#define FONT_LEGEND  13
#define X_LABELS_MAX 8

/* A step of 1, 2 or 5 times a power of ten such that at most 5 steps reach
 * max (max >= 1). */
static int64_t nice_step(int64_t max)
{
	int64_t unit = 1;

	for (;;) {
		if (unit * 5 >= max)
			return unit;
		if (unit * 2 * 5 >= max)
			return unit * 2;
		if (unit * 5 * 5 >= max)
			return unit * 5;
		if (unit > INT64_MAX / 100)
			return unit * 10;
		unit *= 10;
	}
}

/* A tick label: 900, 1,500, 20k, 2.5M. */
static void tick_label(int64_t v, char *buf, size_t len)
{
	if (v >= 1000000)
		snprintf(buf, len, "%gM", (double)v / 1e6);
	else if (v >= 10000)
		snprintf(buf, len, "%gk", (double)v / 1e3);
	else
		html_count(v, buf, len);
}

/* The width of a legend item, estimated from its text (no font metrics in
 * SVG without a script): a swatch, a gap and about 0.6 em a character. */
static double legend_width(const char *name)
{
	return 18.0 + 0.6 * FONT_LEGEND * (double)strlen(name) + 16.0;
}

/* Legend rows needed for the series in the chart width. */
static int legend_rows(const struct html_chart *c)
{
	double x = MARGIN_L;
	int rows = 1;

	for (size_t s = 0; s < c->n_series; s++) {
		double w = legend_width(c->series[s].name);

		if (x + w > CHART_W - MARGIN_R && x > MARGIN_L) {
			rows++;
			x = MARGIN_L;
		}
		x += w;
	}
	return rows;
}

static void draw_legend(FILE *out, const struct html_chart *c)
{
	double x = MARGIN_L, y = 8.0;

	fputs("<g class=\"legend\">", out);
	for (size_t s = 0; s < c->n_series; s++) {
		double w = legend_width(c->series[s].name);

		if (x + w > CHART_W - MARGIN_R && x > MARGIN_L) {
			y += LEGEND_ROW;
			x = MARGIN_L;
		}
		fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>",
		        x, y, c->series[s].color);
		fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\">", x + 18.0, y + 11.0,
		        FONT_LEGEND);
		html_text(out, c->series[s].name);
		fputs("</text>", out);
		x += w;
	}
	fputs("</g>\n", out);
}

/* Grid lines, tick labels and the y axis title. */
static void draw_y_axis(FILE *out, const struct html_chart *c, double top, int64_t step,
                        int64_t ymax)
{
	char label[32];

	for (int64_t v = 0; v <= ymax; v += step) {
		double y = top + PLOT_H - PLOT_H * (double)v / (double)ymax;

		tick_label(v, label, sizeof(label));
		fprintf(
		    out,
		    "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"end\">%s</text>\n",
		    MARGIN_L, CHART_W - MARGIN_R, y, y, MARGIN_L - 6.0, y + 4.0, FONT_AXIS, label);
	}
	fprintf(out,
	        "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
	        "<text transform=\"translate(14 %.1f) rotate(-90)\" font-size=\"%d\" "
	        "text-anchor=\"middle\">",
	        MARGIN_L, MARGIN_L, top, top + PLOT_H, top + PLOT_H / 2.0, FONT_AXIS);
	html_text(out, c->y_title);
	fputs("</text>\n", out);
}

static void draw_x_axis(FILE *out, const struct html_chart *c, double top)
{
	double slot = (CHART_W - MARGIN_L - MARGIN_R) / (double)c->n_points;
	size_t every = (c->n_points + X_LABELS_MAX - 1) / X_LABELS_MAX;

	fprintf(out, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n",
	        MARGIN_L, CHART_W - MARGIN_R, top + PLOT_H, top + PLOT_H);
	for (size_t p = 0; p < c->n_points; p += every ? every : 1) {
		double x = MARGIN_L + slot * ((double)p + 0.5);

		fprintf(out,
		        "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
		        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\">",
		        x, x, top + PLOT_H, top + PLOT_H + 4.0, x, top + PLOT_H + 17.0, FONT_AXIS);
		html_text(out, c->x_labels[p]);
		fputs("</text>\n", out);
	}
	fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\">",
	        MARGIN_L + (CHART_W - MARGIN_L - MARGIN_R) / 2.0, top + PLOT_H + 38.0, FONT_AXIS);
	html_text(out, c->x_title);
	fputs("</text>\n", out);
}

static void draw_segment(FILE *out, const struct html_chart *c, size_t p, size_t s, double x,
                         double w, double y, double h, int64_t v)
{
	char n[32];

	fprintf(out,
	        "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" data-x=\"",
	        x, y, w, h, c->series[s].color);
	html_text(out, c->x_keys[p]);
	fputs("\" data-series=\"", out);
	html_text(out, c->series[s].name);
	fprintf(out, "\" data-n=\"%" PRId64 "\"><title>", v);
	html_text(out, c->x_keys[p]);
	fputc(' ', out);
	html_text(out, c->series[s].name);
	fprintf(out, ": %s</title></rect>\n", html_count(v, n, sizeof(n)));
}

static void draw_bars(FILE *out, const struct html_chart *c, double top, int64_t ymax)
{
	double slot = (CHART_W - MARGIN_L - MARGIN_R) / (double)c->n_points;
	double w = slot > 3.0 ? slot * 0.8 : slot;

	for (size_t p = 0; p < c->n_points; p++) {
		double x = MARGIN_L + slot * (double)p + (slot - w) / 2.0;
		int64_t below = 0;

		for (size_t s = 0; s < c->n_series; s++) {
			int64_t v = c->values[p * c->n_series + s];
			double y0, y1;

			if (v <= 0)
				continue;
			y0 = top + PLOT_H - PLOT_H * (double)below / (double)ymax;
			y1 = top + PLOT_H - PLOT_H * (double)(below + v) / (double)ymax;
			draw_segment(out, c, p, s, x, w, y1, y0 - y1, v);
			below += v;
		}
	}
}

void html_svg_stacked_bars(FILE *out, const struct html_chart *c)
{
	double top = 8.0 + LEGEND_ROW * legend_rows(c) + 6.0;
	int64_t max = 1, step, ymax;

	for (size_t p = 0; p < c->n_points; p++) {
		int64_t sum = 0;

		for (size_t s = 0; s < c->n_series; s++)
			sum += c->values[p * c->n_series + s];
		if (sum > max)
			max = sum;
	}
	step = nice_step(max);
	ymax = (max + step - 1) / step * step;
	fprintf(out,
	        "<svg class=\"chart\" id=\"%s\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
	        "aria-labelledby=\"%s-title\">\n"
	        "<title id=\"%s-title\">",
	        c->id, CHART_W, top + PLOT_H + MARGIN_B, c->id, c->id);
	html_text(out, c->title);
	fputs("</title>\n", out);
	draw_legend(out, c);
	draw_y_axis(out, c, top, step, ymax);
	if (c->n_points > 0) {
		draw_bars(out, c, top, ymax);
		draw_x_axis(out, c, top);
	}
	fputs("</svg>\n", out);
}
