# The two commands of the README: `make demo` and `make test`.
# Everything else builds on the same CMake tree.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_OPTS ?=

FUZZ_SECONDS  ?= 300
CRASH_NOTICES ?= 2000
CRASH_KILLS   ?= 50

.PHONY: all deps build test asan demo bench crash-test fuzz browser-test clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_OPTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DGW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# The demo needs only the executable: it does not wait for the tests to build.
demo: deps
	@cmake -S . -B $(BUILD) $(CMAKE_OPTS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target gateway
	@scripts/demo.sh $(BUILD)

# The long suites: their own targets, short forms in CI (.ci/run).
bench: build
	bash tests/bench/run.sh $(BUILD)

crash-test: build
	bash tests/crash/run.sh $(BUILD) $(CRASH_NOTICES) $(CRASH_KILLS)

fuzz:
	@GW_DEPS_EXTRA="clang libclang-rt-14-dev" scripts/deps.sh
	bash tests/fuzz/run.sh $(FUZZ_SECONDS) build-fuzz

# The operator web view in Debian's headless Chromium (installs chromium and
# playwright-core when missing; the screenshot goes into the build tree).
browser-test: build
	SCREENSHOT=$(BUILD)/web-screenshot.png bash tests/web/browser_test.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
