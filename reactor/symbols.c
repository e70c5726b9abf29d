#define _GNU_SOURCE /* dl_iterate_phdr */
/* A function's name from its address, for the slow-callback detector's reports.
 *
 * Contract (slow_internal.h): reactor__symbol_name(addr, buf, len) always writes a
 * NUL-terminated string: "name" (or "name+0x1c" inside a function), else
 * "0x55d0c1a2b3c4 (object+0x1c3c4)", else "0x55d0c1a2b3c4". It may take a lock and open
 * and map a file: call it only when a report is printed.
 *
 * Why not dladdr(): it only sees dynamic symbols, and a callback is usually a static
 * function of a program linked without -rdynamic. So: dl_iterate_phdr finds the loaded
 * object whose PT_LOAD segment holds the address (the executable, whose file is
 * /proc/self/exe, or a shared library); its ELF file is mapped once and its function
 * symbols are kept, sorted (.symtab, which has the static functions of an unstripped
 * binary; else .dynsym). Objects are cached for the life of the process (a handful).
 *
 * reactor__elf_parse is a parser of file contents: it trusts no offset, size or index
 * (t/fuzz/fuzz_elf_symbols.c feeds it arbitrary bytes). Only ELF images of this
 * process's class (32/64-bit) and byte order are read: the only ones it is ever given. */
#include "reactor/slow_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#define HAVE_PHDR 1
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* ---- The parser ------------------------------------------------------------------ */

#ifdef HAVE_PHDR
#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr ehdr_t;
typedef Elf64_Shdr shdr_t;
typedef Elf64_Sym sym_t;
#define CLASS ELFCLASS64
#define ST_TYPE ELF64_ST_TYPE
#else
typedef Elf32_Ehdr ehdr_t;
typedef Elf32_Shdr shdr_t;
typedef Elf32_Sym sym_t;
#define CLASS ELFCLASS32
#define ST_TYPE ELF32_ST_TYPE
#endif

/* [off, off + size) lies inside [0, len), without overflow. */
static int in_bounds(uint64_t off, uint64_t size, size_t len)
{
    return off <= len && size <= len - off;
}

static int fn_cmp(const void *a, const void *b)
{
    const reactor__elf_fn *x = a, *y = b;
    return x->value < y->value ? -1 : x->value > y->value;
}

int reactor__elf_parse(const unsigned char *img, size_t len, reactor__elf_syms *out)
{
    *out = (reactor__elf_syms){0};
    ehdr_t eh;
    if (!img || len < sizeof eh)
        return -ENOEXEC;
    memcpy(&eh, img, sizeof eh); /* copies: the image need not be aligned */
    static const union { uint16_t u; unsigned char c[2]; } one = {1};
    const unsigned char data = one.c[0] ? ELFDATA2LSB : ELFDATA2MSB;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != CLASS ||
        eh.e_ident[EI_DATA] != data || eh.e_shentsize < sizeof(shdr_t) || eh.e_shnum == 0 ||
        !in_bounds(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize, len))
        return -ENOEXEC;
    /* The symbol table: .symtab if there is one (it has the static functions), else
     * .dynsym. */
    shdr_t symsec = {0}, strsec;
    int found = 0;
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        shdr_t sh;
        memcpy(&sh, img + eh.e_shoff + (uint64_t)i * eh.e_shentsize, sizeof sh);
        if (sh.sh_type == SHT_SYMTAB || (sh.sh_type == SHT_DYNSYM && found != SHT_SYMTAB)) {
            symsec = sh;
            found = (int)sh.sh_type;
        }
    }
    if (!found || symsec.sh_entsize < sizeof(sym_t) || symsec.sh_link >= eh.e_shnum ||
        !in_bounds(symsec.sh_offset, symsec.sh_size, len))
        return -ENOEXEC;
    memcpy(&strsec, img + eh.e_shoff + (uint64_t)symsec.sh_link * eh.e_shentsize, sizeof strsec);
    if (strsec.sh_type != SHT_STRTAB || !in_bounds(strsec.sh_offset, strsec.sh_size, len) ||
        strsec.sh_size >= UINT32_MAX)
        return -ENOEXEC;

    uint64_t nsym = symsec.sh_size / symsec.sh_entsize;
    size_t nfn = 0;
    for (uint64_t i = 0; i < nsym; i++) { /* first count, to allocate once */
        sym_t s;
        memcpy(&s, img + symsec.sh_offset + i * symsec.sh_entsize, sizeof s);
        if (ST_TYPE(s.st_info) == STT_FUNC && s.st_shndx != SHN_UNDEF && s.st_value != 0 &&
            s.st_name != 0 && s.st_name < strsec.sh_size)
            nfn++;
    }
    if (nfn == 0)
        return -ENOEXEC;
    out->strtab = malloc((size_t)strsec.sh_size + 1);
    out->fns = malloc(nfn * sizeof *out->fns);
    if (!out->strtab || !out->fns) {
        reactor__elf_free(out);
        return -ENOMEM;
    }
    memcpy(out->strtab, img + strsec.sh_offset, (size_t)strsec.sh_size);
    out->strtab[strsec.sh_size] = '\0'; /* the last name ends, whatever the file says */
    out->strtab_len = (size_t)strsec.sh_size;
    for (uint64_t i = 0; i < nsym && out->n < nfn; i++) {
        sym_t s;
        memcpy(&s, img + symsec.sh_offset + i * symsec.sh_entsize, sizeof s);
        if (ST_TYPE(s.st_info) == STT_FUNC && s.st_shndx != SHN_UNDEF && s.st_value != 0 &&
            s.st_name != 0 && s.st_name < strsec.sh_size)
            out->fns[out->n++] = (reactor__elf_fn){s.st_value, s.st_size, s.st_name};
    }
    qsort(out->fns, out->n, sizeof *out->fns, fn_cmp);
    return 0;
}
#else
int reactor__elf_parse(const unsigned char *img, size_t len, reactor__elf_syms *out)
{
    (void)img;
    (void)len;
    *out = (reactor__elf_syms){0};
    return -ENOEXEC;
}
#endif

const char *reactor__elf_lookup(const reactor__elf_syms *s, uint64_t off, uint64_t *delta)
{
    /* The last function starting at or before off. */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->fns[mid].value <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Among functions at the same address (aliases), one with a size covers it. */
    for (size_t i = lo; i-- > 0 && s->fns[i].value == s->fns[lo - 1].value;) {
        const reactor__elf_fn *f = &s->fns[i];
        if (off - f->value < f->size || off == f->value) {
            *delta = off - f->value;
            return s->strtab + f->name;
        }
    }
    return NULL;
}

void reactor__elf_free(reactor__elf_syms *s)
{
    free(s->fns);
    free(s->strtab);
    *s = (reactor__elf_syms){0};
}

/* ---- Loaded objects ---------------------------------------------------------------- */

#ifdef HAVE_PHDR
typedef struct object {
    uintptr_t base;  /* dlpi_addr: symbol values are relative to it */
    char *path;
    reactor__elf_syms syms; /* empty when the file could not be read */
    struct object *next;
} object;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static object *cache;

struct find {
    uintptr_t addr;
    uintptr_t base;
    char path[512];
    int found;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (f->addr - start < ph->p_memsz) {
            f->base = info->dlpi_addr;
            /* The executable comes first, with an empty name. */
            const char *p = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "/proc/self/exe";
            snprintf(f->path, sizeof f->path, "%s", p);
            f->found = 1;
            return 1;
        }
    }
    return 0;
}

static void load(object *o)
{
    int fd = open(o->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size <= SIZE_MAX) {
        void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img != MAP_FAILED) {
            reactor__elf_parse(img, (size_t)st.st_size, &o->syms);
            munmap(img, (size_t)st.st_size);
        }
    }
    close(fd);
}

/* The cached object for f, loading it the first time; NULL without memory. */
static object *object_get(const struct find *f)
{
    for (object *o = cache; o; o = o->next)
        if (o->base == f->base && strcmp(o->path, f->path) == 0)
            return o;
    object *o = calloc(1, sizeof *o);
    if (!o || !(o->path = strdup(f->path))) {
        free(o);
        return NULL;
    }
    o->base = f->base;
    load(o);
    o->next = cache;
    cache = o;
    return o;
}

/* A short name for the object: the basename, and for the executable its real name. */
static const char *object_name(const char *path, char *buf, size_t len)
{
    if (strcmp(path, "/proc/self/exe") == 0) {
        ssize_t n = readlink(path, buf, len - 1);
        if (n <= 0)
            return "exe";
        buf[n] = '\0';
        path = buf;
    }
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
#endif

void reactor__symbol_name(const void *addr, char *buf, size_t len)
{
    if (!buf || len == 0)
        return;
    uintptr_t a = (uintptr_t)addr;
#ifdef HAVE_PHDR
    struct find f = {.addr = a};
    dl_iterate_phdr(find_cb, &f);
    if (f.found) {
        pthread_mutex_lock(&cache_lock);
        object *o = object_get(&f);
        uint64_t delta = 0;
        const char *name = o ? reactor__elf_lookup(&o->syms, a - f.base, &delta) : NULL;
        if (name && delta == 0)
            snprintf(buf, len, "%s", name);
        else if (name)
            snprintf(buf, len, "%s+0x%llx", name, (unsigned long long)delta);
        pthread_mutex_unlock(&cache_lock);
        if (name)
            return;
        char tmp[512];
        snprintf(buf, len, "%#llx (%s+%#llx)", (unsigned long long)a,
                 object_name(f.path, tmp, sizeof tmp), (unsigned long long)(a - f.base));
        return;
    }
#endif
    snprintf(buf, len, "%#llx", (unsigned long long)a);
}
