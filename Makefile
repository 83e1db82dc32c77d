# The documented way to do things. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# USERS: synthetic users of demo, months and generate (unset: MLproject's `users`, the one
# default); the benchmarks' size when not given: BENCH_USERS
BENCH_USERS = $(or $(USERS),20000)
STAMP := $(VENV)/.installed
SOURCES := churn_transform steps tests benchmarks dashboard loadtests service.py

# `mlflow run --env-manager local` runs `python` from PATH: make it the project's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db
# `mlflow run` creates a step's run before the step starts: this puts it in the steps' experiment.
export MLFLOW_EXPERIMENT_NAME ?= kkbox-churn
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export BENTOML_DO_NOT_TRACK := True
export DVC_NO_ANALYTICS := 1

.DEFAULT_GOAL := help
.PHONY: help lock setup system-deps demo months cycle score uplift quality drift ui generate pipeline serve bento dashboard test suite lint format bench-generate bench-guard bench-months bench-etl bench-increment bench-predict fidelity loadtest gc rollback clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# uv installs the locked set; where it is missing, pip puts it in .uv/ (no root, no PATH change).
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.uv/bin/uv)

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m pip install --quiet --target $(CURDIR)/.uv uv

# Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set (CI images, containers) no
# process writes .pyc files, and every step, server and worker the tests start would compile
# mlflow, scikit-learn, scipy and pandas from source again.
$(STAMP): pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --compile-bytecode --python $(PYTHON)
	touch $(STAMP)

setup: $(STAMP) ## Create .venv with exactly the locked platform and dev tools (idempotent)

lock: | $(UV) ## Refresh uv.lock to the newest allowed versions, and the Bento's requirements from it
	$(UV) lock --upgrade
	$(UV) export --frozen --only-group serve --no-emit-project --no-hashes --no-header \
	  --output-file deploy/bento/requirements.txt

demo: setup ## The main job end to end on MLproject's defaults (USERS=N for another size; CAMPAIGN=0.5: a past campaign)
	$(BIN)/mlflow run . -e main --env-manager local $(if $(USERS),-P users=$(USERS)) \
	  $(if $(CAMPAIGN),-P campaign_share=$(CAMPAIGN))

# The months after the demo: the generator writes them beside the base files, which it rewrites
# unchanged when given the same USERS and seed; it plays the demo's April campaign list as planned
# (its contacted targets get the offer, its control group does not), so May's labels carry it.
months: setup ## After `make demo` (same USERS and CAMPAIGN): April's plan is played, April and May 2017 land, then a cycle for each
	$(BIN)/mlflow run . -e generate --env-manager local $(if $(USERS),-P users=$(USERS)) -P months=2 \
	  $(if $(CAMPAIGN),-P campaign_share=$(CAMPAIGN)) -P play_campaign=2017-04
	$(BIN)/mlflow run . -e cycle --env-manager local -P month=2017-04
	$(BIN)/mlflow run . -e cycle --env-manager local -P month=2017-05

cycle: setup ## One month of the platform's life after its increment landed (MONTH=YYYY-MM)
	$(if $(MONTH),,$(error make cycle needs the month whose increment landed: make cycle MONTH=2017-04))
	$(BIN)/mlflow run . -e cycle --env-manager local -P month=$(MONTH)

# COHORT=YYYY-MM picks another cohort than the entry point's default (MLproject).
score: setup ## Score a cohort with the champion: predictions and campaign list in the lake (COHORT=)
	$(BIN)/mlflow run . -e score --env-manager local $(if $(COHORT),-P cohort=$(COHORT))

uplift: setup ## The uplift model from the past campaign in the raw files (none: says so), registered and gated
	$(BIN)/mlflow run . -e uplift --env-manager local

quality: setup ## Realized quality of the predictions for a cohort whose labels landed (COHORT=)
	$(BIN)/mlflow run . -e quality --env-manager local $(if $(COHORT),-P cohort=$(COHORT))

drift: setup ## Drift of the service's traffic of the last days against the champion's training data
	$(BIN)/mlflow run . -e drift --env-manager local

# The service follows the alias by itself; the import keeps BentoML's store (and a Bento) in step.
# A value in single quotes for the shell, its own quotes escaped: a reason is free text.
shell_quoted = '$(subst ','\'',$(1))'
rollback: setup ## The champion back to the previous one: REASON="why" (required), VERSION=N, BY=name (default: you)
	$(if $(strip $(REASON)),,$(error make rollback needs a reason: make rollback REASON="AUC fell on April"))
	$(BIN)/mlflow run . -e rollback --env-manager local -P reason=$(call shell_quoted,$(REASON)) \
	  $(if $(VERSION),-P version=$(VERSION)) $(if $(BY),-P user=$(call shell_quoted,$(BY)))
	$(BIN)/mlflow run . -e import --env-manager local

# BUDGET (seconds) and TRIALS (a cap) unset: MLproject's defaults.
.PHONY: tune
tune: setup ## Optuna study of the model's hyperparameters on train's data; prints them as train's -P flags
	$(BIN)/mlflow run . -e tune --env-manager local $(if $(BUDGET),-P budget=$(BUDGET)) \
	  $(if $(TRIALS),-P max_trials=$(TRIALS))

UI_PORT ?= 5000

ui: setup ## MLflow's UI over this store on http://127.0.0.1:5000 (UI_PORT), printing the runs' address
	$(BIN)/python -m steps.ui --host 127.0.0.1 --port $(UI_PORT)

generate: setup ## Only write a synthetic KKBox dataset to data/raw (USERS=N; MLproject's default)
	$(BIN)/mlflow run . -e generate --env-manager local $(if $(USERS),-P users=$(USERS))

SERVE_PORT ?= 3000
DASHBOARD_PORT ?= 8501

serve: setup ## Serve the imported champion on http://127.0.0.1:3000 (SERVE_PORT; after `make demo`)
	$(BIN)/bentoml serve service:ChurnService --host 127.0.0.1 --port $(SERVE_PORT)

dashboard: setup ## The Streamlit dashboard on http://127.0.0.1:8501 (DASHBOARD_PORT)
	$(BIN)/streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(DASHBOARD_PORT) \
	  --server.headless true --browser.gatherUsageStats false

bento: setup ## Build the service's Bento (and its Dockerfile) from bentofile.yaml
	$(BIN)/bentoml build

system-deps: ## Debian packages the tests start for real (PostgreSQL, Prometheus, its Pushgateway and Alertmanager, Redis, Chromium); needs root
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ "$$KKBOX_TEST_BROWSER" = playwright ] || command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Two test processes: with one, the machine idles while a test waits on a server or a step.
# The longest test is collected first (tests/conftest.py); `worksteal` balances the rest.
# (`--dist loadfile`, which builds a file's fixtures once, was slower in one run: benchmarks/README.md.)
TEST_WORKERS ?= 2

# The guard first, on a quiet machine; then the lint (half a minute of mypy on one core) beside the
# suite, whose workers often wait on a server or a step: either failing fails the target.
test: system-deps setup ## The ratio guard, then the test suite beside the lint (what CI runs; TEST_WORKERS=2 processes)
	$(MAKE) --no-print-directory bench-guard
	$(MAKE) --no-print-directory -j 2 lint suite

suite: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: setup ## ruff check and format check, mypy over the library and the steps
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

# Before the tests, on a machine otherwise quiet: ratios measured side by side (benchmarks/README.md).
bench-guard: setup ## Ours against DuckDB, the bare app and a yardstick: fails on a ratio over 25% below its reference (RECORD=1 refreshes them)
	$(BIN)/python benchmarks/guard.py $(if $(RECORD),--record)

bench-months: setup ## The platform over seven months with the shift part way: benchmarks/README.md's table (100,000 users, about 7 min)
	$(BIN)/python benchmarks/monthly.py

bench-generate: setup ## Generator throughput and peak memory (USERS=N, 20000 unset; COMPARE=1: one process beside every core)
	$(BIN)/python benchmarks/generate.py --users $(BENCH_USERS) $(if $(COMPARE),--compare)

bench-etl: setup ## Ingest + gold vs DuckDB and pandas (RAW=folder, or USERS=N to generate)
	$(BIN)/python benchmarks/etl.py $(if $(RAW),--raw $(RAW),--users $(BENCH_USERS))

bench-increment: setup ## One month's increment against a whole ingest (RAW=folder, or USERS=N to generate)
	$(BIN)/python benchmarks/increment.py $(if $(RAW),--raw $(RAW),--users $(BENCH_USERS))

fidelity: setup ## How closely a raw folder matches the real KKBox data (RAW=folder, default data/raw)
	$(BIN)/python benchmarks/fidelity.py --raw $(or $(RAW),data/raw)

bench-predict: setup ## Prediction latency of the champion next to its bare Booster
	$(BIN)/python benchmarks/predict.py

loadtest: setup ## Locust against a running service (HOST=http://127.0.0.1:3000 MODE=run|capacity|compare|sweep|baseline)
	$(BIN)/python loadtests/run.py $(or $(MODE),run) --host $(or $(HOST),http://127.0.0.1:3000)

pipeline: setup ## The main job on existing raw files (data/raw or KKBOX_RAW_URI), without generating
	$(BIN)/mlflow run . -e main --env-manager local -P generate=false

gc: setup ## Remove unpublished lake versions and old ones beyond KKBOX_KEEP_VERSIONS (keeps what models and DVC use)
	$(BIN)/mlflow run . -e gc --env-manager local

clean: ## Remove generated data, MLflow store and caches (keeps .venv)
	rm -rf data mlflow.db mlruns .pytest_cache
