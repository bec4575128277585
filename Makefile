# Chợ Vườn — the two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: audit run run-cluster stop-cluster test install install-runtime lock migrate seed lint fmt clean openapi bench-gateway bench-catalog-reads bench-search bench-page bench-events bench-load bench-load-shapes bench-orders bench-tracing bench-lighthouse fuzz

# Two locks, both with hashes: requirements.lock (what the apps run on: `make run`, the image) and
# requirements-dev.lock (that plus the test and bench tools: `make test`). The venv is updated only
# when a lock or pyproject.toml changes.
$(RUNTIME_STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@echo "Installing the runtime dependencies into $(VENV) …"
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP) requirements-dev.lock
	@echo "Installing the development dependencies into $(VENV) …"
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	@touch $(STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(STAMP)

# After editing the dependencies in pyproject.toml: both locks again, the versions already pinned kept
# where they still fit, and the development lock constrained to the runtime one's versions.
lock:
	@$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
		--custom-compile-command "make lock" -o requirements.lock
	@$(BIN)/uv pip compile pyproject.toml --quiet --extra dev --generate-hashes --python-version 3.11 \
		--custom-compile-command "make lock" -c requirements.lock -o requirements-dev.lock

migrate: install-runtime
	@mkdir -p var
	@$(BIN)/python -m gateway migrate
	@$(BIN)/python -m services.catalog migrate
	@$(BIN)/python -m services.orders migrate
	@$(BIN)/python -m services.notify migrate

# Each app applies its own migrations when it starts; seeding migrates the catalog first.
seed: install-runtime
	@mkdir -p var
	@$(BIN)/python -m gateway seed
	@$(BIN)/python -m services.catalog seed

# The four apps forked from one parent that imported what they share (common/launch.py; docs/operations.md).
APPS := gateway services.catalog services.orders services.notify

run: seed
	@echo ""
	@echo "  Chợ Vườn is starting on http://localhost:8000"
	@echo "    demo shop page:  http://localhost:8000/s/vuon-sung-co-ut"
	@echo "    grower's desk:   http://localhost:8000/grower/login"
	@echo "    API docs:        http://localhost:8000/docs"
	@echo "    demo varieties:  http://localhost:8000/api/v1/products?shop_id=1"
	@echo "    readiness:       http://localhost:8000/readyz"
	@echo "  Ctrl-C stops all four apps."
	@echo ""
	@$(BIN)/python -m common.launch $(APPS)

# The cluster shape on this machine: two replicas of every app on the local PostgreSQL, NATS and Redis
# (databases, a stream and a Redis database of their own), the marketplace on :8000 (deploy/cluster.py).
run-cluster: install-runtime
	@$(BIN)/python deploy/cluster.py run

stop-cluster:
	@$(BIN)/python deploy/cluster.py stop

# axe-core for the browser tests' accessibility checks (tests/browser); without npm those checks skip
# (under CI=true they fail). Chromium itself comes from the system: apt-get install chromium.
BROWSER_DEPS := tests/browser/node_modules/.installed
$(BROWSER_DEPS): tests/browser/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null && touch $@; \
	else echo "npm not found: the browser tests' accessibility checks will be skipped"; fi

# openapi-typescript, openapi-fetch and tsc for the TypeScript client check (tests/contract); without
# npm that test skips (under CI=true it fails).
CONTRACT_DEPS := tests/contract/typescript/node_modules/.installed
$(CONTRACT_DEPS): tests/contract/typescript/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tests/contract/typescript --no-audit --no-fund --loglevel=error >/dev/null && touch $@; \
	else echo "npm not found: the TypeScript client check will be skipped"; fi

test: install $(BROWSER_DEPS) $(CONTRACT_DEPS)
	@$(BIN)/lint-imports
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

# The public contract, docs/openapi.json: the merged document the gateway serves at /openapi.json. Run
# it after changing a public route or schema (make test fails until the committed file is the live
# document); it refuses to write a change that would break clients of the committed one.
openapi: install
	@$(BIN)/python -m tests.contract.document

# The longer fuzzing pass (make test runs a bounded one): 100 examples per operation, stateful
# sequences, a random seed (FUZZ_SEED=… replays one). See docs/testing.md.
fuzz: install
	@FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} FUZZ_STATEFUL=1 $(BIN)/python -m pytest tests/fuzz $(PYTEST_ARGS)

# Known vulnerabilities in the runtime lock: deploy/audit.py against its dated advisory snapshot
# (deploy/audit-advisories.json), and pip-audit first where it can reach its service; fails on a finding
# not in deploy/audit-ignore.toml. docs/operations.md, "Known vulnerabilities".
audit: install
	@$(BIN)/python deploy/audit.py check --online requirements.lock

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/lint-imports

bench-gateway: install
	@$(BIN)/python bench/gateway.py

# GET /api/v1/products?limit=20 against the gateway's /healthz, this source, the listing cache off and the
# commit before decision 0027, in one run (docs/performance.md, "Catalog reads").
bench-catalog-reads: install
	@$(BIN)/python bench/gateway.py --catalog-reads --rounds 3 --connections 16 --duration 8 --warmup 2 \
		--wait-quiet 0 --retries 0 --baseline f03d339

# Search latency at 1k, 10k and 100k products on SQLite and PostgreSQL (127.0.0.1:5432): writes
# docs/performance.md ("Search") and docs/search-latency.png.
bench-search: install
	@$(BIN)/python bench/search.py

# Orders per second through the gateway, 50 buyers, many variants and one, SQLite and PostgreSQL,
# beside raw SQL doing the same conditional updates; checks nothing was oversold.
bench-orders: install
	@$(BIN)/python bench/orders.py

bench-tracing: install
	@$(BIN)/python bench/orders.py --tracing

# Order placed → in the grower's live inbox, p50/p95, over HTTP push and NATS JetStream.
bench-events: install
	@$(BIN)/python bench/events.py

# Two minutes of weighted traffic through the gateway on PostgreSQL + NATS, and the apps' memory:
# rewrites the Load and Memory sections of docs/performance.md and their plots.
bench-load: install
	@$(BIN)/python bench/load.py --write-docs

# The same load on the single-process shape and on the cluster's (deploy/cluster.py: two replicas of every
# app, Redis), in turn, two rounds each, 30 s measured per run (docs/performance.md, "Load: one process or two").
bench-load-shapes: install
	@$(BIN)/python bench/load.py --shape both --rounds 2 --duration 30

# The shop page of 20 products in Chromium, cold cache, unthrottled and on slow 4G: first paint.
bench-page: install $(BROWSER_DEPS)
	@$(BIN)/python bench/page_load.py

clean:
	rm -rf var .pytest_cache

# Lighthouse (pinned in bench/lighthouse/package-lock.json, installed there) on the home, shop, product,
# cart and tracking pages of the demo seed, its default mobile settings, Debian's Chromium: the four
# scores per page, written to docs/performance.md ("Lighthouse"). Target: each ≥ 95.
LIGHTHOUSE_DEPS := bench/lighthouse/node_modules/.installed
$(LIGHTHOUSE_DEPS): bench/lighthouse/package-lock.json
	@npm ci --prefix bench/lighthouse --no-audit --no-fund --loglevel=error >/dev/null && touch $@

bench-lighthouse: install $(LIGHTHOUSE_DEPS)
	@$(BIN)/python bench/page_load.py --lighthouse --runs $${RUNS:-3} --write-docs
