# The README's two commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
LINTED := $(wildcard src tests benchmarks tools hatch_build.py)
# NATIVE=0 runs everything on the pure-Python package; CI requires the compiled one.
NATIVE ?= 1

.PHONY: demo test lint typecheck pytest bench clean native mutation system-packages bench-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The per-request modules compiled with mypyc, rebuilt when a source changes (tools/native.py).
# Byte-code too, as pip writes it on install: where PYTHONDONTWRITEBYTECODE is set, every
# run would otherwise compile its imports again (30 ms of each run's start-up).
native: $(STAMP)
ifeq ($(NATIVE),0)
	$(BIN)/python tools/native.py clean
else
	$(BIN)/python tools/native.py build $(if $(CI),--required)
endif
	$(BIN)/python -m compileall -q src

demo: native
	$(BIN)/asyncfetch demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# Debian packages the tests use for real: chromium (the report's browser test, driven by
# playwright), util-linux's setpriv (drops root for unwritable paths), jq and sqlite3 (the
# commands the end-of-run summary prints), and the interop suite's nginx, lighttpd, busybox
# (httpd), tinyproxy and microsocks (SOCKS5). Installed only when missing (dpkg -s), so a
# second run installs nothing.
DEBIAN_TEST_PACKAGES := chromium util-linux jq sqlite3 nginx lighttpd busybox tinyproxy microsocks

# What `make bench` compares against: wrk (the limit), curl, aria2 and nginx's echo module (the
# latency workload's delayed answers).
DEBIAN_BENCH_PACKAGES := wrk nginx libnginx-mod-http-echo curl aria2

define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get -o DPkg::Lock::Timeout=600 update -q && \
		apt-get -o DPkg::Lock::Timeout=600 install -y -q $$missing; \
	fi
endef

system-packages:
	$(call install_missing,$(DEBIAN_TEST_PACKAGES))

bench-packages:
	$(call install_missing,$(DEBIAN_BENCH_PACKAGES))

pytest: native system-packages
	ASYNCFETCH_EXPECT_NATIVE=$(NATIVE) $(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: native bench-packages
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Mutation testing of the policy modules on a pure-Python copy (tools/mutation.py); slow,
# so not part of `make test`. The report of survivors: build/mutation/report.txt.
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	nice -n 10 $(BIN)/python tools/mutation.py run $(MUTANTS)

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
	find src -name '*.so' -delete
