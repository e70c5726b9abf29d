#!/usr/bin/env python3
"""Writes docs/api.md: every public function of twistc, grouped by header, with the
contract comment that precedes it in the header. The headers stay the reference; this is
their index. Also keeps the include list of the umbrella header protocols/twistc.h
(<twistc/twistc.h>) in step with the public headers. `tools/api_index.py --check` fails
when either is out of date, or when a public header includes the umbrella (CI)."""
import glob
import os
import re
import sys

MODULES = ["reactor", "protocols", "deferred"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def public_headers():
    for m in MODULES:
        for h in sorted(glob.glob(os.path.join(ROOT, m, "*.h"))):
            if not h.endswith("_internal.h"):
                yield m, h


def entries(text):
    """(comment, declaration) for each TWISTC_API declaration and each function-like
    macro whose name is public (module prefix, no double underscore)."""
    lines = text.split("\n")
    out = []
    comment = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("/*"):
            block = [line]
            while "*/" not in lines[i] and i + 1 < len(lines):
                i += 1
                block.append(lines[i])
            comment = block
        elif s.startswith("TWISTC_API"):
            decl = [s]
            while not decl[-1].rstrip().endswith(";") and i + 1 < len(lines):
                i += 1
                decl.append(lines[i].strip())
            d = " ".join(decl).replace("TWISTC_API ", "")
            # x__name: exported for an inline fast path only, not API (not listed).
            name = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", d)
            if "(" in d and not (name and "__" in name[0]):
                out.append((clean(comment), re.sub(r"\s+", " ", d)))
            comment = []
        elif re.match(r"#define [a-z][a-z0-9_]*\(", s) and "__" not in s.split("(")[0]:
            name = s.split("(")[0][len("#define "):] + "(" + s.split("(")[1].split(")")[0] + ")"
            out.append((clean(comment), "#define " + name))
            comment = []
        else:
            comment = []  # a blank or any other line: the comment was not a contract
        i += 1
    return out


def types(text):
    """(comment, definition) for each public type defined with a body: structs (the ops
    structs with their callbacks and the comments saying when each is called, the
    config structs, protocol_reason, deferred_result, ...), enums and unions. Kept
    verbatim: the member comments are the contract."""
    lines = text.split("\n")
    out = []
    comment = []
    i = 0
    start = re.compile(r"^(typedef\s+)?(struct|enum|union)\b[^;()]*\{\s*$")
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("/*") and not line.startswith(" "):
            block = [line]
            while "*/" not in lines[i] and i + 1 < len(lines):
                i += 1
                block.append(lines[i])
            comment = block
        elif start.match(line):
            body = [line]
            while not re.match(r"^\}.*;\s*$", lines[i]) and i + 1 < len(lines):
                i += 1
                body.append(lines[i])
            defn = "\n".join(body)
            names = re.findall(r"\b([a-z][a-z0-9_]*)\b", body[0] + " " + body[-1])
            if not any("__" in n for n in names):
                out.append((clean(comment), defn))
            comment = []
        else:
            comment = []
        i += 1
    return out


def clean(block):
    text = []
    for l in block:
        l = l.strip()
        l = re.sub(r"^/\*+", "", l)
        l = re.sub(r"\*+/$", "", l)
        l = re.sub(r"^\*\s?", "", l)
        text.append(l.strip())
    return " ".join(t for t in text if t)


def render():
    out = ["# API index", "",
           "Every public function of twistc, by header. Each header (installed as",
           "`<twistc/NAME.h>`) opens with its ownership and lifetime rules and is the full",
           "reference; this page is generated from them by `tools/api_index.py`.",
           "Errors follow [errors.md](errors.md). `#include <twistc/twistc.h>` brings in",
           "every header below. Each header's functions come first, then its public types",
           "(ops structs with their callbacks, config structs, enums), verbatim.", ""]
    for m, h in public_headers():
        name = os.path.basename(h)
        with open(h) as f:
            text = f.read()
        es = entries(text)
        ts = types(text)
        if not es and not ts:
            continue
        out.append(f"## `<twistc/{name}>` ({m}/)")
        out.append("")
        for c, d in es:
            out.append(f"- `{d}`" + (f" — {c}" if c else ""))
        if ts:
            out.append("")
            out.append(f"Types of `<twistc/{name}>`:")
            for c, d in ts:
                out.append("")
                if c:
                    out.append(c)
                    out.append("")
                out.append("```c")
                out.append(d)
                out.append("```")
        out.append("")
    return "\n".join(out)


UMBRELLA = os.path.join(ROOT, "protocols", "twistc.h")
BEGIN = "/* begin: generated by tools/api_index.py */"
END = "/* end: generated by tools/api_index.py */"


def umbrella(current):
    """protocols/twistc.h with its include block listing every public header, lowest
    layer first (reactor, deferred, protocols)."""
    names = []
    for m in ["reactor", "deferred", "protocols"]:
        for h in sorted(glob.glob(os.path.join(ROOT, m, "*.h"))):
            n = os.path.basename(h)
            if not n.endswith("_internal.h") and h != UMBRELLA:
                names.append(n)
    block = "\n".join(f"#include <twistc/{n}>" for n in names)
    head, rest = current.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + "\n" + block + "\n" + END + tail


def cycles():
    """Public headers that include the umbrella (an include cycle): they must include
    <twistc/twistc_base.h> instead."""
    bad = []
    for m, h in public_headers():
        if h == UMBRELLA:
            continue
        with open(h) as f:
            if re.search(r"#\s*include\s*<twistc/twistc\.h>", f.read()):
                bad.append(os.path.relpath(h, ROOT))
    return bad


def main():
    path = os.path.join(ROOT, "docs", "api.md")
    text = render()
    with open(UMBRELLA) as f:
        cur = f.read()
    want = umbrella(cur)
    bad = cycles()
    for b in bad:
        print(f"{b} includes <twistc/twistc.h> (the umbrella): include <twistc/twistc_base.h>",
              file=sys.stderr)
    if "--check" in sys.argv:
        rc = 1 if bad else 0
        with open(path) as f:
            if f.read() != text:
                print("docs/api.md is out of date: run tools/api_index.py", file=sys.stderr)
                rc = 1
        if cur != want:
            print("protocols/twistc.h does not include every public header: run "
                  "tools/api_index.py", file=sys.stderr)
            rc = 1
        return rc
    with open(path, "w") as f:
        f.write(text)
    if cur != want:
        with open(UMBRELLA, "w") as f:
            f.write(want)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
