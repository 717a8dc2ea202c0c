# callstats: `make demo` runs the demo, `make test` runs every test. Both install the Python packages they need
# into .venv first, and nothing else: system packages are installed only by `make system-deps`, when asked.
# `make test` includes the reliability suite (tests/reliability: real processes killed, PostgreSQL and Redis
# faulted, schemathesis); skip it with: make test PYTEST_ARGS='-m "not reliability"'
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: install system-deps demo serve test check bench bench-quick clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/callstats demo

serve: install
	$(BIN)/callstats migrate && $(BIN)/callstats serve

# Debian packages some tests drive for real (Chromium for the dashboard, nginx in front of two servers,
# PostgreSQL's initdb/pg_ctl and redis-server for the private servers some tests start). Only this target
# installs them (as root with apt; .ci/run calls it); without them those tests skip, and the run's summary
# names each missing tool with the number of tests skipped for it.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing: the tests that need them will be skipped"; \
	  else echo "missing$$missing (needs root and apt): the tests that need them will be skipped"; fi; \
	fi

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

check: install
	$(BIN)/ruff format --check src tests bench clients/python
	$(BIN)/ruff check src tests bench clients/python
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench.run

bench-quick: install
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache callstats.db* callstats-demo.db*
