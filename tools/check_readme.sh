#!/bin/sh
# The README's first program compiles exactly as shown: the first ```c block after
# "## A first program" in README.md is extracted and built against this build's headers
# and shared library, as a user would (one include, -ltwistc).
#
#   sh tools/check_readme.sh [BUILD] [CC]
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}
CC=${2:-cc}
out=$BUILD/readme
mkdir -p "$out" || exit 2
awk '/^## A first program/ { sec = 1 } sec && /^```c$/ { code = 1; next }
     code && /^```$/ { exit } code { print }' README.md > "$out/first.c"
if [ ! -s "$out/first.c" ]; then
    echo "check_readme: no \`\`\`c block under '## A first program' in README.md"
    exit 1
fi
if ! $CC -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -I"$BUILD/include" \
    -o "$out/first" "$out/first.c" -L"$BUILD" -ltwistc -pthread; then
    echo "check_readme: README.md's first program does not compile as shown ($out/first.c)"
    exit 1
fi
echo "check_readme: README.md's first program compiles as shown"
