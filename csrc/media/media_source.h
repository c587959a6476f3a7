/* media_source.h — an image part's URL → its file bytes, under the operator's policy: `data:`
 * URLs (base64), `file:` URLs only below an allowed directory (vLLM's --allowed-local-media-path),
 * `http(s):` URLs only for allowed host names (vLLM's --allowed-media-domains; unlike vLLM, none
 * are allowed unless listed), with a time limit, a size limit and no redirects.
 * Not here: decoding the bytes (image.h), the request's fields (csrc/server). */
#ifndef G4_MEDIA_MEDIA_SOURCE_H
#define G4_MEDIA_MEDIA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define G4_MEDIA_MAX_DOMAINS 32

typedef struct g4_media_policy {
    char domains[G4_MEDIA_MAX_DOMAINS][256];  /* host names fetched over http(s), exact match */
    int n_domains;                             /* 0 = no http(s) URL is fetched */
    const char *local_dir;                     /* file: URLs must resolve below it; NULL = none */
    size_t max_bytes;                          /* the file's bytes, 0 = no limit */
    long timeout_ms;                           /* whole http(s) transfer, 0 = 10 s */
} g4_media_policy;

/* Adds the comma-separated host names in list (the flag's value). 0, or −1 with err (too many,
 * an empty or an over-long name). */
int g4_media_policy_add_domains(g4_media_policy *p, const char *list, g4_error *err);

/* The bytes url names, malloc'ed in *data (*n bytes). 0, or −1 with err saying why: a malformed
 * data: URL, a scheme not served, a host or path the policy forbids, a fetch that failed, timed
 * out, answered other than 200, or ran over max_bytes. */
int g4_media_load(const char *url, const g4_media_policy *p, uint8_t **data, size_t *n, g4_error *err);

#endif
