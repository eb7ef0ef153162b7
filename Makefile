# rigfit: `make run` serves the seeded site on http://127.0.0.1:8000, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint fmt migrate seed serve serve-prod browser bench bench-deps clean mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[site,demo,dev]"
	touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py load_seed
	$(BIN)/python manage.py load_benchmark_seed
	$(BIN)/python manage.py load_public_runs

run: seed
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production-style server (docs/operations.md): gunicorn, threaded WSGI workers. bench/load.py measured it several
# times faster than uvicorn workers for these sync views, and WSGI streams the demo's tokens from a plain generator.
serve-prod: seed
	$(BIN)/python manage.py collectstatic --noinput
	GUNICORN_BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c config/gunicorn.py config.wsgi:application

# Debian's chromium for the browser tests; installed only when missing and we may install packages.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need /usr/bin/chromium (apt-get install chromium)"; fi; }

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -x -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Mutation testing (docs/testing.md): mutmut mutates the modules whose mistakes users read as wrong answers, one
# module at a time, each mutant checked by the selected tests that reach the mutated function ([tool.mutmut] in
# pyproject.toml). Each module's run is capped (MUTATION_TIMEOUT seconds) and niced; its results are kept in
# var/mutation/ and the kill rate per module and the surviving mutants (with the reason docs/testing.md gives) printed.
# `make mutation MODULES=benchmarks/outliers.py` runs one module; `module.py:f,g` only the functions f and g of it (the
# demo's sampling in inference/engine.py). Not part of `make test` (fit.py alone takes ~20 min). tests/mutation_run.py is
# mutmut's own command line, also mutating the template filters registered with @register.filter (rigfit.py).
MODULES ?= catalog/fit.py catalog/speed.py catalog/speed_fit.py benchmarks/llamabench.py benchmarks/outliers.py \
	catalog/services.py benchmarks/services.py catalog/howto.py catalog/templatetags/rigfit.py \
	inference/engine.py:sample_next,_draw,nucleus,_nucleus_by_histogram
MUTATION_TIMEOUT ?= 2400
MUTATION_JOBS ?= 1
MUTATION_NICE ?= 15
mutation: $(STAMP)
	@mkdir -p var/mutation
	@set -f; for entry in $(MODULES); do \
	  module=$${entry%%:*}; functions=$$(echo "$$entry" | sed -n 's|^[^:]*:||p'); \
	  name=$$(echo $$module | sed 's|/|.|g; s|\.py$$||'); \
	  patterns="$$name.*"; \
	  if [ -n "$$functions" ]; then patterns=$$(echo "$$functions" | tr ',' '\n' | sed "s|^|$$name.x_|; s|$$|__mutmut_*|"); fi; \
	  echo "== $$entry"; \
	  timeout $(MUTATION_TIMEOUT) nice -n $(MUTATION_NICE) $(BIN)/python tests/mutation_run.py run --max-children $(MUTATION_JOBS) $$patterns >var/mutation/$$name.log 2>&1 \
	    || echo "   mutmut exited $$? (log: var/mutation/$$name.log)"; \
	  mkdir -p var/mutation/$$(dirname $$module) && cp mutants/$$module.meta var/mutation/$$module.meta 2>/dev/null || true; \
	done
	@$(BIN)/python tests/mutation_report.py $(MODULES)

bench: seed
	$(BIN)/python bench/load.py

# llama.cpp's Python binding, for bench/demo_speed.py and bench/validate_fit.py (compiles llama.cpp: ~10 min here).
bench-deps: $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --quiet llama-cpp-python==0.3.36

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
