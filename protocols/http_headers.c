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

/* RFC 9110 token characters: letters, digits and !#$%&'*+-.^_`|~ (a table: the parser
 * asks once per byte of every header name). */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

int http__is_tchar(unsigned char c)
{
    return tchar[c];
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
