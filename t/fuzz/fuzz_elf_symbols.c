/* Fuzz target for the ELF symbol reader of the slow-callback detector
 * (reactor/symbols.c: reactor__elf_parse, reactor__elf_lookup).
 *
 * The input is the file's contents. Whatever they are: no crash, no read outside them
 * (ASan), no leak; on success every function kept has a name inside the copied string
 * table, the list is sorted, and a lookup returns NULL or a name inside that table.
 *
 *   make fuzz                              libFuzzer + ASan/UBSan (clang), FUZZ_SECONDS
 *   build/fuzz/fuzz_elf_symbols FILE...    replay inputs (any compiler)
 *   build/fuzz/fuzz_elf_symbols --random N N mutated synthetic ELF images (make check)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/slow_internal.h"

#if defined(__linux__)
#include <elf.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reactor__elf_syms s;
    int rc = reactor__elf_parse(data, size, &s);
    if (rc != 0) {
        if (s.fns || s.strtab || s.n)
            abort(); /* a failure leaves nothing behind */
        return 0;
    }
    if (!s.strtab || s.strtab[s.strtab_len] != '\0')
        abort();
    for (size_t i = 0; i < s.n; i++) {
        if (s.fns[i].name >= s.strtab_len || (i && s.fns[i - 1].value > s.fns[i].value))
            abort();
    }
    /* Lookups at the functions' edges and at offsets taken from the input. */
    uint64_t probes[8] = {0, 1, UINT64_MAX};
    size_t np = 3;
    if (s.n) {
        probes[np++] = s.fns[0].value;
        probes[np++] = s.fns[s.n - 1].value + s.fns[s.n - 1].size;
        probes[np++] = s.fns[s.n / 2].value + 1;
    }
    if (size >= 8) {
        uint64_t v;
        memcpy(&v, data + size - 8, 8);
        probes[np++] = v;
    }
    for (size_t i = 0; i < np; i++) {
        uint64_t delta = 0;
        const char *name = reactor__elf_lookup(&s, probes[i], &delta);
        if (name && (name < s.strtab || name >= s.strtab + s.strtab_len || delta > probes[i]))
            abort();
    }
    reactor__elf_free(&s);
    return 0;
}

#ifndef TWISTC_LIBFUZZER
#include "fuzz_replay.h"

/* A small valid image of this process's class: section headers (null, .symtab, .strtab),
 * then the symbols, then their names. The random mode mutates it. */
static size_t synth(uint8_t *buf, size_t cap, unsigned *x)
{
#if defined(__linux__)
#if UINTPTR_MAX > 0xffffffffu
    typedef Elf64_Ehdr eh_t;
    typedef Elf64_Shdr sh_t;
    typedef Elf64_Sym sym_t;
    const unsigned char cls = ELFCLASS64;
#define INFO(b, t) ELF64_ST_INFO(b, t)
#else
    typedef Elf32_Ehdr eh_t;
    typedef Elf32_Shdr sh_t;
    typedef Elf32_Sym sym_t;
    const unsigned char cls = ELFCLASS32;
#define INFO(b, t) ELF32_ST_INFO(b, t)
#endif
    static const union { uint16_t u; unsigned char c[2]; } one = {1};
    size_t nsym = 1 + (*x = *x * 1103515245u + 12345u) % 12;
    const char names[] = "\0alpha\0beta\0gamma_long_name\0d\0";
    size_t symoff = sizeof(eh_t) + 3 * sizeof(sh_t);
    size_t stroff = symoff + nsym * sizeof(sym_t);
    size_t total = stroff + sizeof names;
    if (total > cap)
        return 0;
    memset(buf, 0, total);
    eh_t eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = cls;
    eh.e_ident[EI_DATA] = one.c[0] ? ELFDATA2LSB : ELFDATA2MSB;
    eh.e_shoff = sizeof(eh_t);
    eh.e_shentsize = sizeof(sh_t);
    eh.e_shnum = 3;
    memcpy(buf, &eh, sizeof eh);
    sh_t sh[3] = {{0}};
    sh[1].sh_type = SHT_SYMTAB;
    sh[1].sh_offset = symoff;
    sh[1].sh_size = nsym * sizeof(sym_t);
    sh[1].sh_entsize = sizeof(sym_t);
    sh[1].sh_link = 2;
    sh[2].sh_type = SHT_STRTAB;
    sh[2].sh_offset = stroff;
    sh[2].sh_size = sizeof names;
    memcpy(buf + eh.e_shoff, sh, sizeof sh);
    static const unsigned name_at[] = {1, 7, 12, 28};
    for (size_t i = 0; i < nsym; i++) {
        sym_t s = {0};
        *x = *x * 1103515245u + 12345u;
        s.st_name = name_at[(*x >> 8) % 4];
        s.st_info = INFO(STB_GLOBAL, i == 0 || (*x >> 12) % 3 ? STT_FUNC : STT_OBJECT);
        s.st_shndx = 1;
        s.st_value = 0x1000 + ((*x >> 4) % 64) * 16;
        s.st_size = (*x >> 16) % 40;
        memcpy(buf + symoff + i * sizeof(sym_t), &s, sizeof s);
    }
    memcpy(buf + stroff, names, sizeof names);
    return total;
#else
    (void)buf;
    (void)cap;
    (void)x;
    return 0;
#endif
}

/* Without libFuzzer: replay the files named, or N mutated synthetic images. */
int main(int argc, char **argv)
{
    int replayed = fuzz_replay_files(argc, argv);
    if (replayed >= 0)
        return replayed;
    unsigned long runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    uint8_t buf[2048];
    unsigned x = 12345;
    unsigned long parsed = 0;
    for (unsigned long r = 0; r < runs; r++) {
        size_t n = synth(buf, sizeof buf, &x);
        if (n == 0)
            break;
        /* A few bytes changed (headers, symbols, names), and sometimes cut short. */
        int muts = (int)((x = x * 1103515245u + 12345u) >> 16) % 6;
        for (int m = 0; m < muts; m++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % n;
            buf[at] = (x >> 20) % 3 == 0 ? 0xff : (uint8_t)(x >> 24);
        }
        if ((x >> 5) % 8 == 0)
            n = (x >> 10) % n;
        reactor__elf_syms s;
        if (reactor__elf_parse(buf, n, &s) == 0) {
            parsed++;
            reactor__elf_free(&s);
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    /* The unmutated image parses: the mutations start from something valid. */
    x = 1;
    size_t n = synth(buf, sizeof buf, &x);
    reactor__elf_syms s;
    if (n && reactor__elf_parse(buf, n, &s) != 0) {
        fprintf(stderr, "fuzz_elf_symbols: the synthetic image does not parse\n");
        return 1;
    }
    if (n)
        reactor__elf_free(&s);
    printf("fuzz_elf_symbols: %lu random inputs (%lu parsed), no fault\n", runs, parsed);
    return 0;
}
#endif
