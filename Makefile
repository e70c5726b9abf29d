# twistc: Twisted's core ideas (reactor, protocols, LineReceiver, Deferreds) in C.
#
#   make              library (static + shared), apps, test runner
#   make demo         start the notification server and run the client against it
#   make check        run the whole Check suite (t/check_all)
#   make asan         the suite under ASan + UBSan        make tsan   thread tests under TSan
#   make valgrind     the suite under valgrind            make bench  build t/bench/ programs
#   make install      PREFIX=/usr/local DESTDIR=          make uninstall
#   make charts       docs/charts/*.svg from docs/results/ (gnuplot)
#
# Variables: CC=clang, WERROR=1 (warnings are errors), BUILD=dir (output folder), V=1 (full
# command lines instead of "  CC    file.o"),
# SAN=asan|tsan (sanitizer build, normally set by the asan/tsan targets).
# Layout: every module directory (reactor/ deferred/ protocols/) holds its sources and
# its public headers; a header named *_internal.h is private. Public headers are
# installed under include/twistc/ and included as <twistc/NAME.h> everywhere.

CC      ?= cc
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
BUILD   ?= build
SAN     ?=

version_part = $(shell sed -n 's/^\#define TWISTC_VERSION_$(1) *\([0-9]*\).*/\1/p' reactor/twistc_base.h)
MAJOR   := $(call version_part,MAJOR)
MINOR   := $(call version_part,MINOR)
PATCH   := $(call version_part,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
OPT     ?= -O2 -g
CFLAGS_BASE := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fPIC -fvisibility=hidden \
	-pthread -I$(BUILD)/include -I.
# Calls into libc (recv, send, epoll_wait: several per request) go straight through the
# GOT instead of a PLT stub: one instruction less each (docs/benchmarks-notebook.md).
ifeq ($(shell uname -m),x86_64)
CFLAGS_BASE += -fno-plt
endif
ifeq ($(SAN),asan)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -DTWISTC_ASAN=1
LDSAN   := -fsanitize=address,undefined
endif
ifeq ($(SAN),tsan)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer -DTWISTC_TSAN=1
LDSAN   := -fsanitize=thread
endif
# hiredis (protocols/redis*: the Redis client) through pkg-config; asked at recipe time
# ($$), so that a fresh machine gets the package from tools/deps.sh first.
HIREDIS_CFLAGS = $$(pkg-config --cflags hiredis)
HIREDIS_LIBS   = $$(pkg-config --libs hiredis)
# zlib (Debian's zlib1g-dev): the HTTP client decodes gzip/deflate bodies.
ZLIB_CFLAGS = $$(pkg-config --cflags zlib)
ZLIB_LIBS   = $$(pkg-config --libs zlib)
# TLS (reactor/tls*.c) is OpenSSL 3 (Debian's libssl-dev), the same way.
SSL_CFLAGS = $$(pkg-config --cflags openssl)
SSL_LIBS   = $$(pkg-config --libs openssl)
ALL_CFLAGS = $(CFLAGS_BASE) $(HIREDIS_CFLAGS) $(ZLIB_CFLAGS) $(SSL_CFLAGS) $(CFLAGS)
LDLIBS_BASE = -pthread $(LDSAN) $(HIREDIS_LIBS) $(ZLIB_LIBS) $(SSL_LIBS)

# Optional kqueue on Linux through libkqueue (not in Debian 12): make KQUEUE=libkqueue
ifeq ($(KQUEUE),libkqueue)
ALL_CFLAGS  += -DTWISTC_HAVE_KQUEUE=1 $(shell pkg-config --cflags libkqueue)
LDLIBS_BASE += $(shell pkg-config --libs libkqueue)
endif

MODULES   := reactor deferred protocols
LIB_SRCS  := $(wildcard $(addsuffix /*.c,$(MODULES)))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
PUB_HDRS  := $(filter-out %_internal.h,$(wildcard $(addsuffix /*.h,$(MODULES))))
HDR_LINKS := $(addprefix $(BUILD)/include/twistc/,$(notdir $(PUB_HDRS)))

STATIC    := $(BUILD)/libtwistc.a
SONAME    := libtwistc.so.$(MAJOR)
SHARED    := $(BUILD)/libtwistc.so.$(VERSION)

APP_SRCS  := $(wildcard apps/*.c)
APP_BINS  := $(APP_SRCS:apps/%.c=$(BUILD)/bin/%)

# The notification demo (server, client, ads) is an application built on the library, not
# part of it: its own static library, linked into the apps, tests and benchmarks that use
# it, so libtwistc exports only the framework.
NOTIF_SRCS := $(wildcard apps/notif/*.c)
NOTIF_OBJS := $(NOTIF_SRCS:%.c=$(BUILD)/obj/%.o)
NOTIF_LIB  := $(BUILD)/libnotif.a

# Test runner: t/check_all.c plus every t/*.c; suites are found by their definition line
# "Suite *suite_NAME(void)" so adding a test file needs no edit here.
T_SRCS    := $(filter-out t/check_all.c,$(wildcard t/*.c))
T_OBJS    := $(T_SRCS:%.c=$(BUILD)/obj/%.o)
CHECK_ALL := $(BUILD)/t/check_all

FUZZ_SRCS := $(wildcard t/fuzz/*.c)
FUZZ_BINS := $(FUZZ_SRCS:t/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 20

BENCH_SRCS := $(wildcard t/bench/*.c)
# The libevent / libuv comparison servers are skipped where pkg-config does not find the library;
# so is libevent's TLS one without libevent_openssl.
BENCH_SKIP := $(if $(shell pkg-config --exists libevent 2>/dev/null && echo y),,server_libevent) \
	$(if $(shell pkg-config --exists libuv 2>/dev/null && echo y),,server_libuv) \
	$(if $(shell pkg-config --exists libcurl 2>/dev/null && echo y),,bench_http) \
	$(if $(shell pkg-config --exists libevent_openssl 2>/dev/null && echo y),,server_libevent_tls)
BENCH_BINS := $(filter-out $(addprefix $(BUILD)/bench/,$(BENCH_SKIP)),$(BENCH_SRCS:t/bench/%.c=$(BUILD)/bench/%))

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: FORCE all lib apps tests check test asan tsan tsan-planets valgrind bench charts fuzz fuzz-replay demo install uninstall clean deps
.DEFAULT_GOAL := all

# Quiet by default ("  CC    build/obj/x.o"); make V=1 prints every command in full.
ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = printf '  %-5s %s\n' $(1) $(2);
endif

# The apps' objects are named only through a pattern rule, so make would delete them as
# intermediates after linking, and rebuild every app on the next `make check`.
.SECONDARY: $(APP_SRCS:%.c=$(BUILD)/obj/%.o)

all: lib apps tests

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/deps.sh
	@sh tools/deps.sh
	@mkdir -p $(@D) && touch $@

lib: $(STATIC) $(BUILD)/libtwistc.so
apps: $(APP_BINS)
tests: $(CHECK_ALL)

$(BUILD)/include/twistc/%.h: | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@# A header that is no longer public (named by an old .d file) gets no link.
	@src='$(abspath $(filter %/$*.h,$(PUB_HDRS)))'; if [ -n "$$src" ]; then ln -sf "$$src" $@; fi

$(BUILD)/obj/%.o: %.c | $(HDR_LINKS) $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(Q)$(call say,CC,$@)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The list of library objects, rewritten only when it changes: a source added, moved or
# removed relinks the libraries even though no remaining object is newer.
LIB_LIST := $(BUILD)/.lib-objs
$(LIB_LIST): FORCE
	@mkdir -p $(@D)
	@echo '$(LIB_OBJS)' | cmp -s - $@ || echo '$(LIB_OBJS)' > $@
FORCE:

$(STATIC): $(LIB_OBJS) $(LIB_LIST)
	@rm -f $@
	$(Q)$(call say,AR,$@)ar rcs $@ $(LIB_OBJS)

$(SHARED): $(LIB_OBJS) $(LIB_LIST)
	$(Q)$(call say,LD,$@)$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $(LIB_OBJS) $(LDLIBS_BASE)

$(NOTIF_LIB): $(NOTIF_OBJS)
	@rm -f $@
	$(Q)$(call say,AR,$@)ar rcs $@ $^

$(BUILD)/libtwistc.so: $(SHARED)
	$(Q)ln -sf $(notdir $(SHARED)) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(notdir $(SHARED)) $@

$(BUILD)/bin/%: $(BUILD)/obj/apps/%.o $(NOTIF_LIB) $(STATIC)
	@mkdir -p $(@D)
	$(Q)$(call say,LD,$@)$(CC) -o $@ $< $(APP_OBJS_$*) $(NOTIF_LIB) $(STATIC) $(LDLIBS_BASE) $(APP_LIBS_$*)

# The planets programs (docs/planets.md) share apps/lib/: the slides' XPath (libxml2) and
# a blocking GET (OpenSSL for https). Those libraries are linked into these apps only,
# never into libtwistc. pkg-config runs in the recipes, after deps.sh installed them.
$(BUILD)/obj/apps/lib/%.o: ALL_CFLAGS += $$(pkg-config --cflags libxml-2.0 openssl)
# planets --mail-to (docs/mail-lesson.md) adds a blocking SMTP sender and the latency probe.
APP_OBJS_planets := $(BUILD)/obj/apps/lib/planets_common.o $(BUILD)/obj/apps/lib/blocking_smtp.o \
	$(BUILD)/obj/apps/lib/planets_probe.o
APP_OBJS_planets-blocking := $(BUILD)/obj/apps/lib/planets_common.o $(BUILD)/obj/apps/lib/planets_fetch.o
APP_OBJS_planets-threads := $(APP_OBJS_planets-blocking)
APP_LIBS_planets = $$(pkg-config --libs libxml-2.0)
APP_LIBS_planets-blocking = $$(pkg-config --libs libxml-2.0 openssl)
APP_LIBS_planets-threads = $(APP_LIBS_planets-blocking)
$(BUILD)/bin/planets: $(APP_OBJS_planets)
$(BUILD)/bin/planets-blocking: $(APP_OBJS_planets-blocking)
$(BUILD)/bin/planets-threads: $(APP_OBJS_planets-threads)

$(BUILD)/t/suites.inc: $(T_SRCS) t/check_all.c
	@mkdir -p $(@D)
	@sed -n 's/^Suite \*\(suite_[a-z0-9_]*\)(void).*/\1/p' $(sort $(T_SRCS)) \
	  | awk '{print "SUITE(" $$1 ")"}' > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/t/check_all.o: t/check_all.c $(BUILD)/t/suites.inc | $(HDR_LINKS) $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(Q)$(call say,CC,$@)$(CC) $(ALL_CFLAGS) -I$(BUILD)/t $$(pkg-config --cflags check) -MMD -MP -c $< -o $@

$(BUILD)/obj/t/%.o: t/%.c | $(HDR_LINKS) $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(Q)$(call say,CC,$@)$(CC) $(ALL_CFLAGS) $$(pkg-config --cflags check) -MMD -MP -c $< -o $@

$(CHECK_ALL): $(BUILD)/obj/t/check_all.o $(T_OBJS) $(NOTIF_LIB) $(STATIC)
	@mkdir -p $(@D)
	$(Q)$(call say,LD,$@)$(CC) -o $@ $^ $$(pkg-config --libs check) $(LDLIBS_BASE)

# The runner prints Check's summary line last and fails when no test ran.
# The layer check first (tools/check_layers.sh: no file includes or calls a layer above
# its own), then interop (t/interop/run.sh: Twisted and our notification pair in all four
# combinations, and the three TLS pairs with a throwaway certificate; exit 77 = skipped,
# python3-twisted missing; before it t/interop/apps.sh, the notification programs' own
# edge cases), so that Check's summary
# stays the last line; both must pass.
# The Twisted peer and redis-server are installed like the other packages when we can
# (root); otherwise deps.sh prints the apt-get line and those tests report themselves
# skipped.
check test: all fuzz-replay
	@sh tools/check_layers.sh $(BUILD)
	@sh tools/check_readme.sh $(BUILD) $(CC)
	@sh tools/deps.sh python3-twisted python3-openssl python3-service-identity 2>&1 | sed 's/^/interop: /' || true
	@sh tools/deps.sh redis-server 2>&1 | sed 's/^/redis: /' || true
	@sh tools/deps.sh python3-aiosmtpd 2>&1 | sed 's/^/smtp: /' || true
	@BUILD=$(BUILD) sh t/interop/apps.sh
	@BUILD=$(BUILD) sh t/interop/run.sh twisted ours ours twisted ours ours twisted twisted \
	  twisted-tls ours-tls ours-tls twisted-tls ours-tls ours-tls relay twisted; \
	  irc=$$?; $(PLANETS_TEST); prc=$$?; $(CHECK_ALL); crc=$$?; \
	  if [ $$irc -ne 0 ] && [ $$irc -ne 77 ]; then exit 1; fi; [ $$prc -eq 0 ] || exit 1; exit $$crc

# The planets programs against planet-server (t/planets/run.py, docs/planets.md).
# Then the mail lesson (t/planets/mail.py, docs/mail-lesson.md): planets --mail-to in its
# three --smtp-mode's against t/smtp_peer.py (python3-aiosmtpd).
PLANETS_TEST = if command -v python3 >/dev/null; then BUILD=$(BUILD) python3 t/planets/run.py; \
	  p1=$$?; BUILD=$(BUILD) python3 t/planets/mail.py && [ $$p1 -eq 0 ]; \
	  else echo "planets: SKIP (no python3 to drive the test)"; fi

# The slide's racy planets-threads under ThreadSanitizer: the race must be reported (in
# first_title), and --fixed must be clean. `make tsan` runs it too.
tsan-planets:
	$(MAKE) BUILD=build-tsan SAN=tsan OPT="-O1 -g" build-tsan/bin/planets-threads build-tsan/bin/planet-server
	BUILD=build-tsan python3 t/planets/run.py --tsan $(TSAN_REPORT)

# docs/planets.md's timing table and race report, and docs/planets-timeline.svg, measured
# again from real runs (t/planets/lesson.py; about a minute; gnuplot draws the picture).
.PHONY: planets-lesson
planets-lesson: apps
	@sh tools/deps.sh gnuplot-nox time
	$(MAKE) tsan-planets TSAN_REPORT=$(abspath $(BUILD))/planets-tsan.txt
	BUILD=$(BUILD) python3 t/planets/lesson.py --tsan-report $(BUILD)/planets-tsan.txt

# docs/mail-lesson.md's table, slow-callback report and docs/mail-lesson-latency.svg,
# measured again (t/planets/mail_lesson.py; about a minute; gnuplot, python3-aiosmtpd).
.PHONY: mail-lesson
mail-lesson: apps
	@sh tools/deps.sh gnuplot-nox python3-aiosmtpd
	BUILD=$(BUILD) python3 t/planets/mail_lesson.py

asan:
	$(MAKE) BUILD=build-asan SAN=asan OPT="-O1 -g" tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 build-asan/t/check_all
	$(MAKE) asan-mail-lesson

# planets --mail-to (its worker threads, pinger thread, chained Deferreds) under ASan.
.PHONY: asan-mail-lesson
asan-mail-lesson:
	$(MAKE) BUILD=build-asan SAN=asan OPT="-O1 -g" build-asan/bin/planets build-asan/bin/planet-server
	if command -v python3 >/dev/null; then ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1 BUILD=build-asan python3 t/planets/mail.py; \
	  else echo "mail lesson: SKIP (no python3 to drive the test)"; fi

# Thread tests (suites tagged "threads") under ThreadSanitizer.
tsan:
	$(MAKE) BUILD=build-tsan SAN=tsan OPT="-O1 -g" tests
	CK_INCLUDE_TAGS=threads TSAN_OPTIONS=halt_on_error=1 build-tsan/t/check_all
	$(MAKE) tsan-planets

# CK_FORK=no: one process, so valgrind sees every test (forked children give false leaks).
# Then planets --mail-to under valgrind (t/planets/mail.py, its timing bounds not asserted).
valgrind: tests $(BUILD)/bin/planets $(BUILD)/bin/planet-server
	@command -v valgrind >/dev/null || sh tools/deps.sh valgrind
	CK_FORK=no TWISTC_UNDER_VALGRIND=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --show-leak-kinds=definite,indirect --error-exitcode=99 $(CHECK_ALL)
	if command -v python3 >/dev/null; then PLANETS_WRAPPER="valgrind -q --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --error-exitcode=99" \
	  BUILD=$(BUILD) python3 t/planets/mail.py; else echo "mail lesson: SKIP (no python3)"; fi

bench: lib $(BENCH_BINS)
$(BUILD)/bench/%: t/bench/%.c $(wildcard t/bench/*.h) $(STATIC) | $(HDR_LINKS)
	@mkdir -p $(@D)
	$(Q)$(call say,LD,$@)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LDLIBS_BASE) -lm $(BENCH_LIBS_$*)
# bench_fanout holds a notification server itself (its no-Redis baseline).
$(BUILD)/bench/bench_fanout: $(NOTIF_LIB)
BENCH_LIBS_bench_fanout = $(NOTIF_LIB) $(STATIC) $(HIREDIS_LIBS)
# Comparison servers link libevent / libuv; they are built only where those are installed.
BENCH_LIBS_server_libevent = $(shell pkg-config --libs libevent 2>/dev/null)
BENCH_LIBS_server_libuv    = $(shell pkg-config --libs libuv 2>/dev/null)
# bench_http compares with libcurl's multi interface (libcurl4-openssl-dev, benchmark only).
BENCH_LIBS_bench_http      = $(shell pkg-config --libs libcurl 2>/dev/null)
# bench_timer_peers compares with libev, libuv and libevent where each is installed
# (Debian's libev-dev has no .pc file: it is found by compiling its header).
HAVE_LIBEV := $(shell $(CC) -E -include ev.h -x c /dev/null >/dev/null 2>&1 && echo y)
# libevent before libev: libev.so also exports a libevent emulation (event_add...).
BENCH_LIBS_bench_timer_peers = \
	$(if $(filter server_libevent,$(BENCH_SKIP)),,-DHAVE_LIBEVENT $(BENCH_LIBS_server_libevent)) \
	$(if $(filter server_libuv,$(BENCH_SKIP)),,-DHAVE_LIBUV $(BENCH_LIBS_server_libuv)) \
	$(if $(HAVE_LIBEV),-DHAVE_LIBEV -lev)
BENCH_LIBS_server_libevent_tls = $(shell pkg-config --libs libevent_openssl libevent 2>/dev/null)

# docs/charts/*.svg from the result files in docs/results/ (tools/charts.py, gnuplot).
charts:
	@command -v gnuplot >/dev/null || sh tools/deps.sh gnuplot-nox
	python3 tools/charts.py

# Fuzz targets: libFuzzer with ASan+UBSan (clang), each for FUZZ_SECONDS. The same files
# build with any compiler as replay/random drivers (fuzz-replay, run by make check).
fuzz:
	@command -v clang >/dev/null || sh tools/deps.sh clang
	$(MAKE) BUILD=build-fuzz CC=clang SAN=asan OPT="-O1 -g" CFLAGS="-fsanitize=fuzzer-no-link" lib
	@mkdir -p build-fuzz/fuzz/corpus
	@for src in $(FUZZ_SRCS); do \
	  name=$$(basename $$src .c); \
	  echo "clang -fsanitize=fuzzer $$src"; \
	  clang -std=c11 -D_POSIX_C_SOURCE=200809L -DTWISTC_LIBFUZZER -O1 -g -Ibuild-fuzz/include -I. \
	    -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz/$$name $$src build-fuzz/libtwistc.a -pthread $(ZLIB_LIBS) $(SSL_LIBS) || exit 1; \
	  mkdir -p build-fuzz/fuzz/corpus/$$name; \
	  if ! build-fuzz/fuzz/$$name -max_total_time=$(FUZZ_SECONDS) \
	      build-fuzz/fuzz/corpus/$$name > build-fuzz/fuzz/$$name.log 2>&1; then \
	    tail -40 build-fuzz/fuzz/$$name.log; exit 1; fi; \
	  tail -1 build-fuzz/fuzz/$$name.log; \
	done

# This target includes the server's source (the request reader lives in an app).
$(BUILD)/fuzz/fuzz_planet_server: apps/planet-server.c
fuzz-replay: $(FUZZ_BINS)
	@for b in $(FUZZ_BINS); do $$b --random 20000 || exit 1; done
$(BUILD)/fuzz/%: t/fuzz/%.c $(STATIC) | $(HDR_LINKS)
	@mkdir -p $(@D)
	$(Q)$(call say,LD,$@)$(CC) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(LDLIBS_BASE)

demo: all
	sh apps/demo.sh $(BUILD)/bin

install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/twistc
	install -m 644 $(PUB_HDRS) $(DESTDIR)$(INCLUDEDIR)/twistc/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	$(Q)ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	$(Q)ln -sf $(notdir $(SHARED)) $(DESTDIR)$(LIBDIR)/libtwistc.so
	@# Written here, not at build time, so the PREFIX given to install is the one it holds.
	printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: twistc\nDescription: %s\nVersion: %s\nLibs: -L$${libdir} -ltwistc\nRequires.private: hiredis zlib openssl\nLibs.private: -pthread\nCflags: -I$${includedir} -pthread\n' \
	  '$(PREFIX)' '$(LIBDIR)' '$(INCLUDEDIR)' 'Twisted-style reactor, protocols and Deferreds for C' '$(VERSION)' \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/twistc.pc

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/twistc/,$(notdir $(PUB_HDRS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/twistc 2>/dev/null
	rm -f $(DESTDIR)$(LIBDIR)/libtwistc.a $(DESTDIR)$(LIBDIR)/$(notdir $(SHARED)) \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libtwistc.so $(DESTDIR)$(LIBDIR)/pkgconfig/twistc.pc

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
