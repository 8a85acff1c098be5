/*
 * shown - how saslgatectl's text output shows values that came from the
 * wire (user names above all): escaped, so that control characters cannot
 * reach the terminal and two different names never print the same, and
 * padded by characters, not bytes.
 */
#ifndef SASLGATE_SHOWN_H
#define SASLGATE_SHOWN_H

#include <stddef.h>
#include <stdio.h>

/* Room for the shown form of a user name or another value from the wire. */
#define CTL_SHOWN_MAX 1024

/* A value as text output shows it: escaped (utf8_escape(): invalid UTF-8,
 * controls, blanks, invisible characters and the backslash), in buf (len
 * bytes; a cut form ends in "..."), or "-" for NULL or "". Returns buf or the
 * "-". */
const char *ctl_shown(const char *text, char *buf, size_t len);

/* Prints ctl_shown(text) to out, padded with blanks to width characters. */
void ctl_print_column(FILE *out, const char *text, int width);

#endif
