/* media_source.c — data:, file: and http(s): URLs → bytes under a g4_media_policy
 * (media_source.h). http(s) through libcurl's easy interface, one transfer per call. */
#include "media/media_source.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/file.h"

int g4_media_policy_add_domains(g4_media_policy *p, const char *list, g4_error *err) {
    for (const char *t = list;; t++) {
        const char *end = strchr(t, ',');
        size_t n = end ? (size_t)(end - t) : strlen(t);
        while (n && *t == ' ') t++, n--;
        while (n && t[n - 1] == ' ') n--;
        if (!n) return g4_fail(err, "--allowed-media-domains: an empty host name");
        if (n >= sizeof p->domains[0]) return g4_fail(err, "--allowed-media-domains: a host name over 255 bytes");
        if (p->n_domains == G4_MEDIA_MAX_DOMAINS)
            return g4_fail(err, "--allowed-media-domains: more than %d host names", G4_MEDIA_MAX_DOMAINS);
        memcpy(p->domains[p->n_domains], t, n);
        p->domains[p->n_domains++][n] = '\0';
        if (!end) return 0;
        t = end;
    }
}

/* --- data: ------------------------------------------------------------------------------- */

static int b64_value(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int load_data_url(const char *url, const g4_media_policy *p, uint8_t **data, size_t *n, g4_error *err) {
    const char *comma = strchr(url, ',');
    if (!comma) return g4_fail(err, "malformed data: URL (no comma before the data)");
    size_t meta = (size_t)(comma - url);
    if (meta < 12 || strncasecmp(comma - 7, ";base64", 7))
        return g4_fail(err, "data: URL must be base64 (data:image/...;base64,...)");
    const char *b = comma + 1;
    size_t len = strlen(b);
    while (len && b[len - 1] == '=') len--;
    size_t out_n = len / 4 * 3 + (len % 4 == 3 ? 2 : len % 4 == 2 ? 1 : 0);
    if (len % 4 == 1) return g4_fail(err, "malformed data: URL (the base64 length is impossible)");
    if (p->max_bytes && out_n > p->max_bytes)
        return g4_fail(err, "image too large: %zu bytes, the limit is %zu", out_n, p->max_bytes);
    if (out_n == 0) return g4_fail(err, "data: URL holds no data");
    uint8_t *o = malloc(out_n);
    if (!o) return g4_fail(err, "out of memory for a %zu-byte image", out_n);
    uint32_t acc = 0;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)b[i]);
        if (v < 0) {
            free(o);
            return g4_fail(err, "malformed data: URL (character %zu is not base64)", i);
        }
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            o[k++] = (uint8_t)(acc >> 16);
            o[k++] = (uint8_t)(acc >> 8);
            o[k++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (len % 4 == 2) o[k++] = (uint8_t)(acc >> 4);
    if (len % 4 == 3) {
        o[k++] = (uint8_t)(acc >> 10);
        o[k++] = (uint8_t)(acc >> 2);
    }
    *data = o;
    *n = k;
    return 0;
}

/* --- file: ------------------------------------------------------------------------------- */

static int hexval(int c) { return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1; }

static int load_file_url(const char *url, const g4_media_policy *p, uint8_t **data, size_t *n, g4_error *err) {
    if (!p->local_dir || !p->local_dir[0])
        return g4_fail(err, "file: URLs are not allowed (the server has no --allowed-local-media-path)");
    const char *path = url + 5;
    if (!strncmp(path, "//", 2)) {
        path += 2;
        if (strncmp(path, "/", 1) && strncasecmp(path, "localhost/", 10))
            return g4_fail(err, "file: URL names a host; only local paths are read");
        if (!strncasecmp(path, "localhost/", 10)) path += 9;
    }
    char decoded[PATH_MAX];
    size_t k = 0;
    for (const char *s = path; *s; s++) {
        if (k + 1 >= sizeof decoded) return g4_fail(err, "file: path too long");
        if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            decoded[k++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            decoded[k++] = *s;
        }
    }
    decoded[k] = '\0';
    if (decoded[0] != '/' || memchr(decoded, '\0', k)) return g4_fail(err, "file: URL must name an absolute path");
    char root[PATH_MAX], real[PATH_MAX];
    if (!realpath(p->local_dir, root)) return g4_fail(err, "--allowed-local-media-path does not resolve");
    if (!realpath(decoded, real)) return g4_fail(err, "file: path %s is not below the allowed media path", decoded);
    size_t rn = strlen(root);
    if (strncmp(real, root, rn) || (real[rn] != '/' && !(rn == 1 && root[0] == '/')))
        return g4_fail(err, "file: path %s is not below the allowed media path", decoded);
    char *buf = NULL;
    g4_error ferr = {{0}};
    if (g4_read_file(real, p->max_bytes ? p->max_bytes : (size_t)1 << 40, &buf, n, &ferr))
        return g4_fail(err, "file: %s", ferr.msg);
    *data = (uint8_t *)buf;
    return 0;
}

/* --- http(s): ---------------------------------------------------------------------------- */

typedef struct fetch_buf {
    uint8_t *p;
    size_t n, cap, max;
    int over;
} fetch_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user) {
    fetch_buf *b = user;
    size_t len = size * nmemb;
    if (b->max && b->n + len > b->max) {
        b->over = 1;
        return 0;
    }
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + len) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, ptr, len);
    b->n += len;
    return len;
}

static int host_allowed(const g4_media_policy *p, const char *host) {
    for (int i = 0; i < p->n_domains; i++)
        if (!strcasecmp(p->domains[i], host)) return 1;
    return 0;
}

static int load_http_url(const char *url, const g4_media_policy *p, uint8_t **data, size_t *n, g4_error *err) {
    CURLU *u = curl_url();
    char *host = NULL;
    if (!u) return g4_fail(err, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return g4_fail(err, "malformed URL");
    }
    int ok = host_allowed(p, host);
    if (!ok) g4_fail(err, "host %s is not in the server's --allowed-media-domains", host);
    curl_free(host);
    curl_url_cleanup(u);
    if (!ok) return -1;
    CURL *c = curl_easy_init();
    if (!c) return g4_fail(err, "libcurl: cannot start a transfer");
    fetch_buf b = {.max = p->max_bytes};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, p->timeout_ms > 0 ? p->timeout_ms : 10000L);
    if (p->max_bytes) curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (b.over || rc == CURLE_FILESIZE_EXCEEDED) {
        free(b.p);
        return g4_fail(err, "image too large: the download exceeds the limit of %zu bytes", p->max_bytes);
    }
    if (rc != CURLE_OK) {
        free(b.p);
        return g4_fail(err, "fetch failed: %s", cerr[0] ? cerr : curl_easy_strerror(rc));
    }
    if (status != 200) {
        free(b.p);
        return g4_fail(err, "fetch failed: HTTP status %ld", status);
    }
    if (!b.n) {
        free(b.p);
        return g4_fail(err, "fetch returned no data");
    }
    *data = b.p;
    *n = b.n;
    return 0;
}

int g4_media_load(const char *url, const g4_media_policy *p, uint8_t **data, size_t *n, g4_error *err) {
    if (!url || !url[0]) return g4_fail(err, "empty URL");
    if (!strncasecmp(url, "data:", 5)) return load_data_url(url, p, data, n, err);
    if (!strncasecmp(url, "file:", 5)) return load_file_url(url, p, data, n, err);
    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)) {
        if (p->n_domains == 0)
            return g4_fail(err, "http(s) image URLs are not allowed (the server has no --allowed-media-domains)");
        return load_http_url(url, p, data, n, err);
    }
    return g4_fail(err, "unsupported URL scheme (data:, http(s): or file: are read)");
}
