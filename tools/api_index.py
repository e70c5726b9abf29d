#!/usr/bin/env python3
"""Writes docs/api.md: every public function of twistc, grouped by header, with the
contract comment that precedes it in the header. The headers stay the reference; this is
their index. `tools/api_index.py --check` fails when docs/api.md is out of date (CI)."""
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
           "Errors follow [errors.md](errors.md).", ""]
    for m, h in public_headers():
        name = os.path.basename(h)
        with open(h) as f:
            es = entries(f.read())
        if not es:
            continue
        out.append(f"## `<twistc/{name}>` ({m}/)")
        out.append("")
        for c, d in es:
            out.append(f"- `{d}`" + (f" — {c}" if c else ""))
        out.append("")
    return "\n".join(out)


def main():
    path = os.path.join(ROOT, "docs", "api.md")
    text = render()
    if "--check" in sys.argv:
        with open(path) as f:
            if f.read() != text:
                print("docs/api.md is out of date: run tools/api_index.py", file=sys.stderr)
                return 1
        return 0
    with open(path, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
