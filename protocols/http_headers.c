/* http_headers: one growing string buffer holds every name and value (NUL-terminated),
 * an array of offsets indexes them: two allocations however many headers, so parsing
 * a response costs no malloc per header. */
#include <twistc/http.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocols/http_internal.h"

void http_headers_init(http_headers *h)
{
    memset(h, 0, sizeof *h);
}

void http_headers_free(http_headers *h)
{
    if (!h)
        return;
    free(h->v);
    free(h->buf);
    memset(h, 0, sizeof *h);
}

int http__is_tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int http__headers_append(http_headers *h, const char *name, size_t nlen, const char *value,
                         size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct http__hdr *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t need = h->len + nlen + vlen + 2;
    if (need > h->bcap) {
        size_t cap = h->bcap ? h->bcap : 512;
        while (cap < need)
            cap *= 2;
        char *b = realloc(h->buf, cap);
        if (!b)
            return -ENOMEM;
        h->buf = b;
        h->bcap = cap;
    }
    struct http__hdr *e = &h->v[h->n++];
    e->name = (uint32_t)h->len;
    memcpy(h->buf + h->len, name, nlen);
    h->buf[h->len + nlen] = 0;
    e->value = (uint32_t)(h->len + nlen + 1);
    memcpy(h->buf + e->value, value, vlen);
    h->buf[e->value + vlen] = 0;
    e->nlen = (uint32_t)nlen;
    e->vlen = (uint32_t)vlen;
    h->len = need;
    return 0;
}

int http_headers_add_n(http_headers *h, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
    if (!h || !name || (!value && vlen) || nlen == 0 || nlen > 65535 || vlen > (1u << 24))
        return -EINVAL;
    for (size_t i = 0; i < nlen; i++)
        if (!http__is_tchar((unsigned char)name[i]))
            return -EINVAL;
    for (size_t i = 0; i < vlen; i++)
        if (value[i] == '\r' || value[i] == '\n' || value[i] == 0)
            return -EINVAL;
    return http__headers_append(h, name, nlen, value ? value : "", vlen);
}

int http_headers_add(http_headers *h, const char *name, const char *value)
{
    if (!name || !value)
        return -EINVAL;
    return http_headers_add_n(h, name, strlen(name), value, strlen(value));
}

const char *http__headers_find(const http_headers *h, const char *name, size_t nlen)
{
    if (!h)
        return NULL;
    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].nlen == nlen && strncasecmp(h->buf + h->v[i].name, name, nlen) == 0)
            return h->buf + h->v[i].value;
    return NULL;
}

const char *http_headers_get(const http_headers *h, const char *name)
{
    return name ? http__headers_find(h, name, strlen(name)) : NULL;
}

size_t http_headers_count(const http_headers *h)
{
    return h ? h->n : 0;
}

const char *http_headers_name(const http_headers *h, size_t i)
{
    return h && i < h->n ? h->buf + h->v[i].name : NULL;
}

const char *http_headers_value(const http_headers *h, size_t i)
{
    return h && i < h->n ? h->buf + h->v[i].value : NULL;
}

void http_response_free(void *response)
{
    http_response *r = response;
    if (!r)
        return;
    free(r->reason);
    http_headers_free(&r->headers);
    free(r->body);
    free(r->url);
    free(r);
}

http_response *http_result_response(const deferred_result *r)
{
    if (!r || r->kind != DEFERRED_PTR || r->free_fn != http_response_free)
        return NULL;
    return r->u.p;
}

int http_failure_status(const deferred_failure *f)
{
    for (; f; f = f->cause)
        if (f->code >= HTTP_ESTATUS + 100 && f->code < HTTP_ESTATUS + 1000)
            return f->code - HTTP_ESTATUS;
    return 0;
}
