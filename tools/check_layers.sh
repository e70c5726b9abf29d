#!/bin/sh
# Layers point one way (docs/README.md): apps -> protocols -> deferred -> reactor.
# A file may include headers of its own layer or of a layer below it, never above.
#
#   sh tools/check_layers.sh [BUILD]
#
# 1. Includes: every #include in reactor/ deferred/ protocols/ apps/ (subfolders such as
#    apps/notif/ belong to their top folder's layer; public headers
#    <twistc/NAME.h> are mapped to the directory that holds NAME.h, "dir/x_internal.h"
#    to dir).
# 2. Calls, when BUILD/obj holds the objects: no object of a layer refers to a symbol
#    defined by a layer above it (a weak reference counts too), and libtwistc.so exports
#    nothing defined under apps/ (apps/notif/, the demo pair, is an application: libnotif.a).
# A top-level source directory missing from LAYERS fails the check: say where it sits.
# Exit 0 when clean, 1 with one line per violation.
set -u
cd "$(dirname "$0")/.." || exit 2
BUILD=${1:-build}

# Lowest first: "dir:rank". Directories of the same rank may include each other.
LAYERS="reactor:0 deferred:1 protocols:2 apps:3"
SKIP="t tools docs .ci .git"

rank_of() { # dir -> rank, or empty
    for l in $LAYERS; do
        [ "${l%%:*}" = "$1" ] && { echo "${l#*:}"; return; }
    done
}

fail=0
for d in */; do
    d=${d%/}
    case " $SKIP " in *" $d "*) continue ;; esac
    case $d in build*) continue ;; esac
    [ -n "$(find "$d" -name '*.[ch]' 2>/dev/null | head -1)" ] || continue
    if [ -z "$(rank_of "$d")" ]; then
        echo "check_layers: $d/ holds sources but is not in LAYERS (tools/check_layers.sh): add it at its layer"
        fail=1
    fi
done

dirs=""
for l in $LAYERS; do [ -d "${l%%:*}" ] && dirs="$dirs ${l%%:*}"; done

# Public header name -> owning directory, one "name dir" a line.
headers=$(for d in $dirs; do find "$d" -name '*.h' ! -name '*_internal.h' | while read -r h; do
    echo "$(basename "$h") $d"; done; done)

for d in $dirs; do
    r=$(rank_of "$d")
    for f in $(find "$d" -name '*.[ch]' | sort); do
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' "$f" | while IFS= read -r line; do
            n=${line%%:*}
            target=$(printf '%s\n' "$line" | sed 's/.*include[[:space:]]*[<"]\([^>"]*\)[>"].*/\1/')
            case $target in
            twistc/*)
                name=${target#twistc/}
                owner=$(printf '%s\n' "$headers" | awk -v n="$name" '$1 == n { print $2; exit }')
                if [ -z "$owner" ]; then
                    echo "$f:$n: <$target>: no public header of that name in$dirs"
                    echo x
                    continue
                fi ;;
            */*) owner=${target%%/*} ;;
            *) continue ;; # system header, or a file beside this one
            esac
            orank=$(rank_of "$owner")
            [ -n "$orank" ] || continue # <sys/...>, <netinet/...>: not ours
            if [ "$orank" -gt "$r" ]; then
                echo "$f:$n: includes $target from $owner/, a layer above $d/"
                echo x
            fi
        done
    done
done > "${TMPDIR:-/tmp}/check_layers.$$"
if grep -q '^x$' "${TMPDIR:-/tmp}/check_layers.$$"; then
    grep -v '^x$' "${TMPDIR:-/tmp}/check_layers.$$"
    fail=1
fi
rm -f "${TMPDIR:-/tmp}/check_layers.$$"

# Calls: undefined (or weak) references of each layer's objects against the symbols the
# layers above define.
if [ -d "$BUILD/obj" ] && command -v nm >/dev/null; then
    tmp=$(mktemp -d) || exit 2
    for d in $dirs; do
        objs=$(find "$BUILD/obj/$d" -name '*.o' 2>/dev/null | sort)
        [ -n "$objs" ] || continue
        # shellcheck disable=SC2086
        nm -A --defined-only $objs 2>/dev/null | awk '$(NF-1) ~ /^[TDBRVW]$/ { print $NF }' \
            | sort -u > "$tmp/def.$d"
        # shellcheck disable=SC2086
        nm -A $objs 2>/dev/null | awk '$(NF-1) ~ /^[Uwv]$/ { f = $1; sub(/:$/, "", f); print $NF, f }' \
            | sort -u > "$tmp/ref.$d"
    done
    for d in $dirs; do
        [ -f "$tmp/ref.$d" ] || continue
        r=$(rank_of "$d")
        for u in $dirs; do
            [ "$(rank_of "$u")" -gt "$r" ] && [ -f "$tmp/def.$u" ] || continue
            awk -v up="$u" -v me="$d" 'NR == FNR { def[$1] = 1; next }
                ($1 in def) { print $2 ": " me "/ refers to " $1 ", defined in " up "/ (a layer above)"; bad = 1 }
                END { exit bad }' "$tmp/def.$u" "$tmp/ref.$d" || fail=1
        done
    done
    # The apps layer (apps/notif/ included) is not the library: nothing it defines may be
    # exported by libtwistc.so.
    if [ -f "$tmp/def.apps" ] && [ -f "$BUILD/libtwistc.so" ]; then
        nm -D --defined-only "$BUILD/libtwistc.so" 2>/dev/null | awk '{ print $NF }' | sort -u \
            > "$tmp/exported"
        if comm -12 "$tmp/def.apps" "$tmp/exported" | grep -v '^main$' | sed \
            's|^|libtwistc.so exports |; s|$|, defined under apps/ (an application, not the library)|' \
            | grep .; then
            fail=1
        fi
    fi
    rm -rf "$tmp"
fi

if [ $fail -ne 0 ]; then
    echo "check_layers: FAILED (apps -> protocols -> deferred -> reactor; see docs/README.md)"
    exit 1
fi
echo "check_layers: ok (apps -> protocols -> deferred -> reactor)"
