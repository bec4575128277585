# Chợ Vườn — the two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install migrate seed lint fmt clean bench-gateway bench-search

# The venv is rebuilt only when the lock file or pyproject.toml change.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@echo "Installing dependencies into $(VENV) …"
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	@mkdir -p var
	@$(BIN)/python -m gateway migrate
	@$(BIN)/python -m services.catalog migrate
	@$(BIN)/python -m services.orders migrate
	@$(BIN)/python -m services.notify migrate

# Each app applies its own migrations when it starts; seeding migrates the catalog first.
seed: install
	@mkdir -p var
	@$(BIN)/python -m gateway seed
	@$(BIN)/python -m services.catalog seed

run: seed
	@echo ""
	@echo "  Chợ Vườn is starting on http://localhost:8000"
	@echo "    API docs:        http://localhost:8000/docs"
	@echo "    demo varieties:  http://localhost:8000/api/v1/products?shop_id=1"
	@echo "    readiness:       http://localhost:8000/readyz"
	@echo "  Ctrl-C stops all four apps."
	@echo ""
	@$(BIN)/honcho start -f Procfile

test: install
	@$(BIN)/lint-imports
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/lint-imports

bench-gateway: install
	@$(BIN)/python bench/gateway.py

# Search latency at 1k, 10k and 100k products on SQLite and PostgreSQL (127.0.0.1:5432): writes
# docs/performance.md ("Search") and docs/search-latency.png.
bench-search: install
	@$(BIN)/python bench/search.py

clean:
	rm -rf var .pytest_cache
