# coldchain build. `make` builds everything into build/; `make run` and `make test`
# are the two commands a new machine needs (see README.md).

CC      ?= cc
BUILD   ?= build
SAN     ?=
OPT     ?= -O2
# common/'s layers (README "Architecture", each folder's README.md): one library, one -I each,
# so includes stay "cc_x.h" wherever a header lives.
COMMON_DIRS := base store engine api jobs
COMMON_INC  := $(COMMON_DIRS:%=-Icommon/%)
# libpq (PostgreSQL 15's client, libpq-dev): the PostgreSQL store, common/store/cc_dbi_pg.c.
# Debian's paths when pkg-config is missing (a bare build image).
PQ_CFLAGS   := $(or $(shell pkg-config --cflags libpq 2>/dev/null),-I/usr/include/postgresql)
PQ_LIBS     := $(or $(shell pkg-config --libs libpq 2>/dev/null),-lpq)
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
               -Wno-format-nonliteral -g $(OPT) -fPIC -pthread $(COMMON_INC) -Ibroker-config \
               -I$(BUILD)/gen \
               $(PQ_CFLAGS)
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS     += -fsanitize=address,undefined
endif
CFLAGS  += $(CFLAGS_BASE)
# Header dependencies (issue 14 point 5): every compile writes $@.d beside its output, naming
# the headers it read (-MMD: ours, not the system's) with an empty rule per header (-MP: a
# removed header breaks nothing). Each output also depends on its own .d, and a missing .d
# counts as changed (the empty %.d rules below): an output built before -MMD, or whose .d was
# deleted, is rebuilt once and gets one. Each compile ends with `touch $@`: clang writes the
# .d after the output, which would leave the output older than its .d for ever.
# `make deps-check` (run by `unit`) proves it.
DEPFLAGS = -MMD -MP -MF $@.d -MT $@
LDLIBS_COMMON := -lcjson -lsqlite3 $(PQ_LIBS) -lcrypto -lcurl -lm -pthread

# cc_auth_rules.c: the broker plugin's pure checks, shared with cc_devices.c's serial rule.
COMMON_SRC  := $(sort $(wildcard $(COMMON_DIRS:%=common/%/*.c))) broker-config/cc_auth_rules.c
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/cc_migrations.o \
               $(BUILD)/obj/gen/cc_pg_migrations.o
INGESTD_SRC := $(sort $(wildcard ingestd/*.c))
APID_SRC    := $(sort $(wildcard apid/*.c))
# cc_seed.c: the demo data of `ccctl seed` (and its unit test, test_seed).
CCCTL_SRC   := $(sort $(wildcard tools/ccctl*.c)) tools/cc_seed.c
UNIT_SRC    := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# tests/unit/fixture.c: the one temporary, migrated store the unit tests share.
UNIT_OBJ    := $(BUILD)/obj/tests/unit/fixture.o
TOOL_BINS   := $(patsubst tools/%.c,$(BUILD)/%,$(sort $(wildcard tools/bench_*.c)))
MIGRATIONS  := $(sort $(wildcard schema/[0-9][0-9][0-9][0-9]_*.sql))
# PostgreSQL's (schema/pg/, docs/postgresql.md) and the PG store's batch insert, which is
# no migration but is embedded the same way (cc_pg_ingest_sql).
PG_MIGRATIONS := $(sort $(wildcard schema/pg/[0-9][0-9][0-9][0-9]_*.sql))
PG_EMBED      := --pg --text cc_pg_ingest_sql schema/pg/ingest.sql $(PG_MIGRATIONS)

.PHONY: all run test seed bench soak clean deps unit unit-asan integration integration-pg format format-check openapi fuzz fuzz-build boundary-check deps-check

all: $(BUILD)/ingestd $(BUILD)/apid $(BUILD)/ccctl $(BUILD)/coldchain_auth.so $(TOOL_BINS)

$(BUILD)/gen/cc_migrations.c: $(MIGRATIONS) tools/embed_sql.sh
	@mkdir -p $(@D)
	sh tools/embed_sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/cc_pg_migrations.c: $(PG_MIGRATIONS) schema/pg/ingest.sql tools/embed_sql.sh
	@mkdir -p $(@D)
	sh tools/embed_sql.sh $(PG_EMBED) > $@.tmp && mv $@.tmp $@

# The generated sources: both migration sets and the OpenAPI document.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/obj/gen/%.o.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
	@touch $@

# The OpenAPI document apid serves (GET /api/openapi.json): docs/openapi.json, generated
# from docs/openapi.yaml by `make openapi` and committed, embedded with sh and sed.
$(BUILD)/gen/openapi_json.c: docs/openapi.json tools/gen_openapi_c.sh
	@mkdir -p $(@D)
	sh tools/gen_openapi_c.sh docs/openapi.json > $@.tmp && mv $@.tmp $@

openapi:
	/usr/bin/python3 tools/gen_openapi.py docs/openapi.yaml docs/openapi.json

$(BUILD)/obj/%.o: %.c $(BUILD)/obj/%.o.d | $(BUILD)/gen/cc_migrations.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
	@touch $@

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/ingestd: $(INGESTD_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ -lmosquitto -lcivetweb $(LDLIBS_COMMON)

# For `make bench` only: ingestd without the MQTT channel, i.e. publishing no alert events
# on alerts/{coldCellId} (the outbox rows are still written and the other channels sent;
# notifications have no MQTT delivery anyway, SPEC §3), so that tools/bench_ingest.sh can
# price the channel apart from the alert engine. Never installed or run by `make run`.
$(BUILD)/obj/ingestd/jobs_no_mqtt_notify.o: ingestd/jobs.c $(BUILD)/obj/ingestd/jobs_no_mqtt_notify.o.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -DCC_BENCH_NO_MQTT_NOTIFY -c $< -o $@
	@touch $@

$(BUILD)/ingestd-no-mqtt-notify: $(filter-out %/jobs.o,$(INGESTD_SRC:%.c=$(BUILD)/obj/%.o)) \
                                 $(BUILD)/obj/ingestd/jobs_no_mqtt_notify.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ -lmosquitto -lcivetweb $(LDLIBS_COMMON)

$(BUILD)/apid: $(APID_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/openapi_json.o \
               $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcivetweb -lpaho-mqtt3c -ljwt $(LDLIBS_COMMON)

# paho-mqtt3cs: the TLS build of Paho, for `ccctl simulate --cafile` (ssl:// URLs).
$(BUILD)/ccctl: $(CCCTL_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ -lpaho-mqtt3cs $(LDLIBS_COMMON)

# -lssl: bench_load --cafile (the TLS phase of make bench); -lmosquitto: bench_count.
# A static pattern rule, so the bench objects are not intermediate files deleted after a build.
$(TOOL_BINS): $(BUILD)/bench_%: $(BUILD)/obj/tools/bench_%.o $(BUILD)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ -lmosquitto -lpaho-mqtt3c -lcivetweb -lssl $(LDLIBS_COMMON)

# The broker plugin reads devices through the store (SQLite or PostgreSQL, read-only): the
# linker takes from libcommon.a only the objects that reaches, and keeps their symbols
# private to the plugin (--exclude-libs).
$(BUILD)/coldchain_auth.so: broker-config/coldchain_auth.c $(BUILD)/obj/broker-config/cc_auth_rules.o \
                            $(BUILD)/obj/common/base/cc_crypto.o $(BUILD)/libcommon.a \
                            $(BUILD)/coldchain_auth.so.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -shared -Wl,--exclude-libs,ALL -o $@ $(filter %.c %.o %.a,$^) \
	    $(LDLIBS_COMMON)
	@touch $@

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_OBJ) $(BUILD)/libcommon.a $(BUILD)/tests/%.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_OBJ) $(BUILD)/libcommon.a -lcmocka -ljwt \
	    $(LDLIBS_COMMON)
	@touch $@

# ingestd's broker connection, tested without a broker (its publish bound).
$(BUILD)/tests/test_ingest_mqtt: tests/unit/test_ingest_mqtt.c $(BUILD)/obj/ingestd/mqtt.o \
                                 $(BUILD)/obj/ingestd/sockbuf.o $(BUILD)/obj/ingestd/pubacks.o \
                                 $(UNIT_OBJ) $(BUILD)/libcommon.a $(BUILD)/tests/test_ingest_mqtt.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/ingestd/mqtt.o \
	    $(BUILD)/obj/ingestd/sockbuf.o $(BUILD)/obj/ingestd/pubacks.o $(UNIT_OBJ) \
	    $(BUILD)/libcommon.a -lcmocka -lmosquitto $(LDLIBS_COMMON)
	@touch $@

# ingestd's mid -> alert event bookkeeping (pure: no broker, no store).
$(BUILD)/tests/test_ingest_pubacks: tests/unit/test_ingest_pubacks.c $(BUILD)/obj/ingestd/pubacks.o \
                                    $(BUILD)/tests/test_ingest_pubacks.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/ingestd/pubacks.o -lcmocka
	@touch $@

# ingestd's writer queue on a real SQLite file and journal (its bounds).
$(BUILD)/tests/test_ingest_writer: tests/unit/test_ingest_writer.c $(BUILD)/obj/ingestd/writer.o \
                                   $(BUILD)/obj/ingestd/disk.o $(BUILD)/obj/ingestd/lag.o \
                                   $(UNIT_OBJ) $(BUILD)/libcommon.a $(BUILD)/tests/test_ingest_writer.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/ingestd/writer.o \
	    $(BUILD)/obj/ingestd/disk.o $(BUILD)/obj/ingestd/lag.o $(UNIT_OBJ) $(BUILD)/libcommon.a \
	    -lcmocka $(LDLIBS_COMMON)
	@touch $@

# ingestd's lag histogram (pure: what /metrics reads of it).
$(BUILD)/tests/test_ingest_lag: tests/unit/test_ingest_lag.c $(BUILD)/obj/ingestd/lag.o \
                                $(BUILD)/tests/test_ingest_lag.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/ingestd/lag.o -lcmocka
	@touch $@

# ingestd's read buffer under libmosquitto (it defines read(2) for the whole program).
$(BUILD)/tests/test_ingest_sockbuf: tests/unit/test_ingest_sockbuf.c $(BUILD)/obj/ingestd/sockbuf.o \
                                    $(BUILD)/tests/test_ingest_sockbuf.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/obj/ingestd/sockbuf.o -lcmocka -pthread
	@touch $@

# The seed lives in tools/ with ccctl, outside libcommon.
$(BUILD)/tests/test_seed: tests/unit/test_seed.c $(BUILD)/obj/tools/cc_seed.o $(UNIT_OBJ) \
                          $(BUILD)/libcommon.a $(BUILD)/tests/test_seed.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Itools $(LDFLAGS) -o $@ $< $(BUILD)/obj/tools/cc_seed.o $(UNIT_OBJ) \
	    $(BUILD)/libcommon.a \
	    -lcmocka -ljwt $(LDLIBS_COMMON)
	@touch $@
$(BUILD)/tests/test_seed_pg: tests/unit/test_seed_pg.c $(BUILD)/obj/tools/cc_seed.o $(UNIT_OBJ) \
                             $(BUILD)/libcommon.a $(BUILD)/tests/test_seed_pg.d
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Itools $(LDFLAGS) -o $@ $< $(BUILD)/obj/tools/cc_seed.o $(UNIT_OBJ) \
	    $(BUILD)/libcommon.a \
	    -lcmocka -ljwt $(LDLIBS_COMMON)
	@touch $@

# ccctl's PostgreSQL side (the URL split of ccctl_pg.c), outside libcommon like the seed.
$(BUILD)/tests/test_ccctl_pg: tests/unit/test_ccctl_pg.c $(BUILD)/obj/tools/ccctl_pg.o \
                              $(BUILD)/libcommon.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itools $(LDFLAGS) -o $@ $< $(BUILD)/obj/tools/ccctl_pg.o \
	    $(BUILD)/libcommon.a -lcmocka $(LDLIBS_COMMON)

# libFuzzer targets (tests/fuzz/fuzz_*.c, docs in tests/fuzz/README.md): clang with
# fuzzer+ASan+UBSan; common/ and apid/ (minus main.c) are compiled again into build/fuzz/
# so the plain build's objects stay gcc's. `make fuzz` runs each for FUZZ_S seconds.
FUZZ_CC     ?= clang
FUZZ_DIR    := build/fuzz
FUZZ_S      ?= 60
FUZZ_SANS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := $(filter-out -I$(BUILD)/gen -fPIC $(OPT),$(CFLAGS_BASE)) -O1 -I$(FUZZ_DIR)/gen \
               -Itests/fuzz -Ibroker-config -fno-omit-frame-pointer $(FUZZ_SANS)
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_LIBSRC := $(COMMON_SRC) $(filter-out apid/main.c,$(APID_SRC)) \
               $(wildcard broker-config/cc_auth_rules.c)
FUZZ_OBJ    := $(FUZZ_LIBSRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/cc_migrations.o \
               $(FUZZ_DIR)/obj/gen/cc_pg_migrations.o $(FUZZ_DIR)/obj/gen/openapi_json.o

$(FUZZ_DIR)/gen/cc_migrations.c: $(MIGRATIONS) tools/embed_sql.sh
	@mkdir -p $(@D)
	sh tools/embed_sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(FUZZ_DIR)/gen/cc_pg_migrations.c: $(PG_MIGRATIONS) schema/pg/ingest.sql tools/embed_sql.sh
	@mkdir -p $(@D)
	sh tools/embed_sql.sh $(PG_EMBED) > $@.tmp && mv $@.tmp $@

$(FUZZ_DIR)/gen/openapi_json.c: docs/openapi.json tools/gen_openapi_c.sh
	@mkdir -p $(@D)
	sh tools/gen_openapi_c.sh docs/openapi.json > $@.tmp && mv $@.tmp $@

$(FUZZ_DIR)/obj/gen/%.o: $(FUZZ_DIR)/gen/%.c $(FUZZ_DIR)/obj/gen/%.o.d
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
	@touch $@

$(FUZZ_DIR)/obj/%.o: %.c $(FUZZ_DIR)/obj/%.o.d | $(FUZZ_DIR)/gen/cc_migrations.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
	@touch $@

$(FUZZ_DIR)/libfuzzcc.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libfuzzcc.a $(FUZZ_DIR)/fuzz_%.d
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(DEPFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libfuzzcc.a \
	    -lcivetweb -lpaho-mqtt3c -ljwt $(LDLIBS_COMMON)
	@touch $@

fuzz-build: $(FUZZ_BIN)

# Every output compiled with $(DEPFLAGS), for the rule that makes a missing .d count as changed.
# Listed by name, not by pattern, so a .d is never an intermediate file (whose absence make
# would ignore). An output missing here fails with "No rule to make target ….d".
DEP_OUT  := $(COMMON_OBJ) $(INGESTD_SRC:%.c=$(BUILD)/obj/%.o) $(APID_SRC:%.c=$(BUILD)/obj/%.o) \
            $(CCCTL_SRC:%.c=$(BUILD)/obj/%.o) $(TOOL_BINS:$(BUILD)/%=$(BUILD)/obj/tools/%.o) \
            $(BUILD)/obj/gen/openapi_json.o $(BUILD)/obj/ingestd/jobs_no_mqtt_notify.o \
            $(UNIT_OBJ) $(UNIT_BIN) $(BUILD)/coldchain_auth.so $(FUZZ_OBJ) $(FUZZ_BIN)
DEP_FILES := $(DEP_OUT:%=%.d)
$(DEP_FILES):
-include $(wildcard $(DEP_FILES))

# Proves the header dependencies on what is built in $(BUILD) and $(FUZZ_DIR): make's -W
# ("pretend this file was just modified") must find each dependent output out of date and an
# unrelated one up to date. No file is touched, so it is safe beside a running build.
deps-check:
	@BUILD=$(BUILD) FUZZ_DIR=$(FUZZ_DIR) MAKE="$(MAKE)" sh tests/deps_check.sh

fuzz: deps fuzz-build
	@FUZZ_S=$(FUZZ_S) sh tools/fuzz.sh

deps:
	@sh tools/deps.sh

unit: boundary-check $(UNIT_BIN)
	@sh tests/run_unit.sh $(BUILD)/tests
	@$(MAKE) --no-print-directory deps-check

# The daemons reach the database only through the store's typed functions (cc_store.h;
# issue 14 point 2): no SQLite header or handle, no cc_db_ / cc_sql_ call, no raw
# connection from cc_store_db in apid/ or ingestd/. Run by `unit`, hence by `make test`.
# And the store sits below the layers that use it: nothing in common/store/ includes an
# api/ or jobs/ header (common/store/README.md), and base/ includes no database header.
BOUNDARY_RE = sqlite3|cc_store_db|cc_db_|cc_sql_|CC_DB_|cc_db\.h|cc_sql\.h
EMPTY       :=
SPACE       := $(EMPTY) $(EMPTY)
STORE_ABOVE  = $(subst .,\.,$(subst $(SPACE),|,$(notdir $(wildcard common/api/*.h common/jobs/*.h))))
# ccctl on either store (issue 14 point 4): SQLite's backup API is in store/ too
# (cc_store_backup.h), so no ccctl file reaches SQLite itself.
CCCTL_DBI_SRC = $(wildcard tools/ccctl*.[ch] tools/cc_seed.[ch])
# Only common/store/ includes a database header (issue 14: sqlite3.h, libpq-fe.h): every
# tool, daemon, the broker plugin and the layers above the store go through its headers.
# tests/ is left out: the unit tests build raw SQLite fixtures and test the store's own
# SQLite code (sqlite3_* calls in test_db.c, test_walckpt.c, test_query.c, ...), reaching
# SQLite through the store's cc_db.h / cc_sql.h rather than including it themselves.
DB_HEADER_RE  = \#[[:space:]]*include[[:space:]]*[<"](sqlite3|libpq-fe)\.h[>"]
DB_HEADER_SRC = $(wildcard tools/*.[ch] apid/*.[ch] ingestd/*.[ch] broker-config/*.[ch] \
                  common/base/*.[ch] common/engine/*.[ch] common/api/*.[ch] common/jobs/*.[ch])
boundary-check:
	@if grep -nE '$(BOUNDARY_RE)' apid/*.[ch] ingestd/*.[ch]; then \
		echo "boundary-check: apid/ or ingestd/ bypass cc_store.h (lines above)"; exit 1; \
	fi; echo "boundary-check: apid/ and ingestd/ reach the database only through cc_store.h"
	@if grep -nE '#include "($(STORE_ABOVE))"' common/store/*.[ch]; then \
		echo "boundary-check: common/store/ includes an api/ or jobs/ header (lines above)"; exit 1; \
	fi; if grep -nE 'sqlite3|cc_db\.h|cc_sql\.h|cc_store\.h' common/base/*.[ch]; then \
		echo "boundary-check: common/base/ reaches the database (lines above)"; exit 1; \
	fi; echo "boundary-check: common/store/ includes nothing from api/ or jobs/, base/ no database"
	@if grep -nE '$(BOUNDARY_RE)' $(CCCTL_DBI_SRC); then \
		echo "boundary-check: ccctl reaches SQLite itself (lines above)"; exit 1; \
	fi; echo "boundary-check: ccctl runs its SQL through cc_dbi.h and cc_store_backup.h"
	@if grep -nE '$(DB_HEADER_RE)' $(DB_HEADER_SRC); then \
		echo "boundary-check: a database header included outside common/store/ (lines above)"; exit 1; \
	fi; echo "boundary-check: only common/store/ includes sqlite3.h or libpq-fe.h"

unit-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 unit

integration: all
	@/usr/bin/python3 tests/integration/run.py

test: deps
	@$(MAKE) --no-print-directory all
	@sh tests/run_all.sh

# The integration suites on PostgreSQL alone (make test runs them too, see tests/run_all.sh):
# every suite but test_pg_schema and test_ccctl_pg, which are PostgreSQL's already.
integration-pg: all
	@CC_TEST_STORE=pg CC_SUITE=integration-pg /usr/bin/python3 tests/integration/run.py \
	    $$(ls tests/integration/test_*.py | grep -v -e test_pg_schema -e test_ccctl_pg)

seed: $(BUILD)/ccctl
	$(BUILD)/ccctl seed

run: deps all
	@sh tools/run.sh

# tools/bench_store.sh (SQLite against PostgreSQL, the store alone) needs bench_store.
bench: deps all $(BUILD)/ingestd-no-mqtt-notify $(BUILD)/bench_store
	@sh tools/bench.sh

# Not part of `make test`: SOAK_S seconds (default 600) of mixed load; prints "soak:" lines.
soak: deps all
	@BUILD=$(BUILD) sh tools/soak.sh

clean:
	rm -rf build

format:
	clang-format -i common/*/*.[ch] ingestd/*.[ch] apid/*.[ch] tools/*.[ch] tests/unit/*.[ch] broker-config/*.c

format-check:
	clang-format --dry-run -Werror common/*/*.[ch] ingestd/*.[ch] apid/*.[ch] tools/*.[ch] tests/unit/*.[ch] broker-config/*.c
