# warren - the two commands that matter:
#   make run     install what is missing, build, start the broker with defaults
#   make test    unit + integration tests in a release and an ASan build, then
#                every fuzz target once over its corpus
# Others: make build | make fuzz [FUZZ_SECONDS=60] | make bench | make clean
#
# The build itself is CMake (CMakeLists.txt); this file only strings the steps
# together. Every recipe runs under bash -euo pipefail, so any failing step
# fails the target.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
ARGS ?=
# Debian's python3, which has python3-pytest and the client packages
# (a python3 earlier in PATH, e.g. pyenv's, may lack them).
PYTHON ?= /usr/bin/python3

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# --durations: the slowest tests, to keep the suite within its CI budget.
PYTEST := PYTHONDONTWRITEBYTECODE=1 $(PYTHON) -m pytest -q -p no:cacheprovider --durations=15

INTEGRATION_TESTS = $(shell find test/integration -name 'test_*.py' -o -name '*_test.py' 2>/dev/null)
FUZZ_TARGETS = $(patsubst test/fuzz/%.c,%,$(wildcard test/fuzz/fuzz_*.c))

.PHONY: all deps build build-asan build-fuzz run test unit unit-asan integration \
        integration-asan fuzz-check fuzz bench clean

all: build

deps:
	@deploy/install-deps.sh

# --- builds -----------------------------------------------------------------

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DWR_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)

# Fuzz targets need clang's libFuzzer; a machine without it says so and
# skips (deploy/install-deps.sh installs it, so CI always has it).
build-fuzz: deps
	@if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' \
	     | clang -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null; then \
	  echo "SKIP build-fuzz: clang with libFuzzer is not available"; exit 0; fi; \
	CC=clang cmake -S . -B build-fuzz -DWR_FUZZ=ON >/dev/null; \
	cmake --build build-fuzz -j$(JOBS)

# --- run ----------------------------------------------------------------------

# `make run ARGS="--shards 2"` passes flags through.
run: build
	exec ./build/warrend $(ARGS)

# --- tests --------------------------------------------------------------------

test: deps
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory build-asan
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory unit-asan
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory integration-asan
	$(MAKE) --no-print-directory fuzz-check
	@echo "make test: all passed"

unit:
	ctest --test-dir build --output-on-failure -j$(JOBS)

unit-asan:
	$(ASAN_ENV) ctest --test-dir build-asan --output-on-failure -j$(JOBS)

# The integration tests start build*/warrend themselves (test/integration/lib).
integration:
ifeq ($(strip $(INTEGRATION_TESTS)),)
	@echo "SKIP integration: no tests under test/integration yet"
else
	WARREN_BIN=$(CURDIR)/build/warrend WARRENCTL_BIN=$(CURDIR)/build/warrenctl \
	  $(PYTEST) test/integration
endif

integration-asan:
ifeq ($(strip $(INTEGRATION_TESTS)),)
	@echo "SKIP integration-asan: no tests under test/integration yet"
else
	WARREN_BIN=$(CURDIR)/build-asan/warrend WARRENCTL_BIN=$(CURDIR)/build-asan/warrenctl \
	  $(ASAN_ENV) $(PYTEST) test/integration
endif

# Every fuzz target runs each file of test/fuzz/corpus/<target>/ once: the
# corpus doubles as a regression suite (h2o's 99fuzzer tests).
fuzz-check:
ifeq ($(strip $(FUZZ_TARGETS)),)
	@echo "SKIP fuzz-check: no fuzz targets under test/fuzz yet"
else
	@$(MAKE) --no-print-directory build-fuzz
	@if [ ! -d build-fuzz ]; then echo "SKIP fuzz-check: no fuzz build"; exit 0; fi; \
	for t in $(FUZZ_TARGETS); do \
	  c=test/fuzz/corpus/$$t; \
	  if [ -z "$$(find $$c -type f 2>/dev/null | head -1)" ]; then \
	    echo "fuzz-check $$t: no corpus in $$c, 1000 runs from an empty seed"; \
	    ./build-fuzz/$$t -runs=1000 2>&1 | tail -1; \
	  else \
	    echo "fuzz-check $$t: $$(find $$c -type f | wc -l) corpus files"; \
	    find $$c -type f -print0 | xargs -0 ./build-fuzz/$$t >build-fuzz/$$t.log 2>&1 \
	      || { tail -40 build-fuzz/$$t.log; echo "fuzz-check $$t: FAILED"; exit 1; }; \
	  fi; \
	done
endif

# Fuzzes each target for FUZZ_SECONDS. New inputs go to build-fuzz/corpus/<t>
# (copy the interesting ones into test/fuzz/corpus/<t>); crashes are written
# to test/fuzz/crash-* (git-ignored).
fuzz: build-fuzz
ifeq ($(strip $(FUZZ_TARGETS)),)
	@echo "no fuzz targets under test/fuzz yet"
else
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t test/fuzz/corpus/$$t; \
	  dict=; [ -f test/fuzz/$$t.dict ] && dict=-dict=test/fuzz/$$t.dict; \
	  echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	  ./build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=test/fuzz/ $$dict \
	    build-fuzz/corpus/$$t test/fuzz/corpus/$$t; \
	done
endif

# --- benchmarks ---------------------------------------------------------------

bench: build
	@if [ -f bench/run.sh ]; then exec bash bench/run.sh; \
	 else echo "no bench/run.sh yet: nothing to run"; fi

clean:
	rm -rf build build-asan build-fuzz
