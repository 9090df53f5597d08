# The README's two commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
LINTED := $(wildcard src tests benchmarks tools hatch_build.py)
# NATIVE=0 runs everything on the pure-Python package; CI requires the compiled one.
NATIVE ?= 1

.PHONY: demo test lint typecheck pytest bench clean native

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

# Debian packages the tests run for real: the interop suite's third-party servers.
DEBIAN_TEST_PACKAGES := nginx lighttpd tinyproxy
SYSTEM_STAMP := $(VENV)/.installed-debian

$(SYSTEM_STAMP): Makefile | $(BIN)/python
	@missing=$$(for p in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get -o DPkg::Lock::Timeout=600 update -q && \
		apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	fi
	touch $@

pytest: native $(SYSTEM_STAMP)
	ASYNCFETCH_EXPECT_NATIVE=$(NATIVE) $(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: native
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
	find src -name '*.so' -delete
