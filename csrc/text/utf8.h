/* utf8.h - strict UTF-8 scanning and the few Unicode predicates the text layer needs.
 *
 * "Strict" means what Python's UTF-8 codec accepts: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. Not here: normalization, case mapping beyond ASCII. */
#ifndef G4_TEXT_UTF8_H
#define G4_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence starting at s[0..n), storing its code point in *cp;
 * 0 when s[0] does not start a complete valid sequence (invalid byte or truncated). */
int g4_utf8_next(const char *s, size_t n, uint32_t *cp);

/* Length of the longest prefix of s[0..n) that does not end inside an incomplete (but so far
 * valid-looking) multi-byte sequence: a streaming writer emits that prefix and keeps the rest.
 * Invalid bytes are not held back (they can never become valid). */
size_t g4_utf8_complete_prefix(const char *s, size_t n);

/* 1 when s[0..n) is entirely valid UTF-8. */
int g4_utf8_valid(const char *s, size_t n);

/* Python str.isspace() for one code point (Unicode White_Space plus the \x1c..\x1f separators). */
int g4_unicode_is_space(uint32_t cp);

/* Python str.strip(): the [*begin, *end) sub-range of s[0..n) without leading/trailing whitespace. */
void g4_utf8_strip(const char *s, size_t n, size_t *begin, size_t *end);

#endif
