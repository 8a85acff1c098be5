/*
 * html - writing HTML text and inline SVG charts for saslgatectl's
 * self-contained pages (report html). Nothing here reads the store: callers
 * hand in texts and numbers, and every text is written escaped, so a value
 * from the store (a user name, a service, an exception's reason) always shows
 * as text and never becomes markup, wherever it lands (element content, a
 * quoted attribute value, SVG text).
 *
 * Escaping: & < > " ' become character references; bytes that are not valid
 * UTF-8 and control characters other than tab and line feed become U+FFFD,
 * so the output is always well-formed UTF-8.
 * Attribute values must be written in double quotes.
 */
#ifndef SASLGATE_HTML_H
#define SASLGATE_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Writes s escaped (element content or a double-quoted attribute value).
 * NULL writes nothing. */
void html_text(FILE *out, const char *s);

/* Writes <tag class="cls">s</tag>, s escaped; cls may be NULL. tag and cls
 * are the caller's literals, not escaped. */
void html_elem(FILE *out, const char *tag, const char *cls, const char *s);

/* Formats v with thousands separators ("12,345") into buf (at least 32
 * bytes); returns buf. */
const char *html_count(int64_t v, char *buf, size_t len);

/* A percentage with one decimal ("12.5%") of part in whole, or "-" when whole
 * is 0, into buf (at least 16 bytes); returns buf. */
const char *html_percent(int64_t part, int64_t whole, char *buf, size_t len);

/*
 * A stacked bar chart as an inline <svg>: one bar per point on the x axis,
 * each stacked from its series' values, with a y axis (a nice scale, grid
 * lines and labels), x labels (thinned to fit), axis titles and a legend.
 * Every bar segment carries data-x (the point's key), data-series and data-n
 * attributes and a <title> tooltip, so that the numbers can be read back.
 * Segments with value 0 are not drawn.
 */
struct html_series {
	const char *name;  /* escaped */
	const char *color; /* a CSS colour literal of the caller, e.g. "#c0392b" */
};

struct html_chart {
	const char *id;      /* unique in the page: [a-z0-9-], the caller's literal */
	const char *title;   /* escaped */
	const char *x_title; /* escaped */
	const char *y_title; /* escaped */
	size_t n_points;
	const char *const *x_keys;   /* n_points keys (data-x, tooltips), escaped */
	const char *const *x_labels; /* n_points short labels, escaped */
	size_t n_series;
	const struct html_series *series;
	const int64_t *values; /* n_points * n_series: values[p * n_series + s] */
};

void html_svg_stacked_bars(FILE *out, const struct html_chart *c);

#endif
