# cryptopred — every entry point a person (or cron, or CI) uses. `make help` lists them.
# `make run` and `make test` set everything up themselves: they create .venv and install the project when it is
# missing or when pyproject.toml has changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The install stamp is keyed on pyproject.toml's content: editing dependencies reinstalls.
STAMP  := $(VENV)/.installed-$(shell (sha256sum pyproject.toml 2>/dev/null || shasum -a 256 pyproject.toml) | cut -c1-16)

export CRYPTOPRED_HOME ?= $(CURDIR)/var
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export WHYLOGS_NO_ANALYTICS := 1
export MPLBACKEND := Agg
export PYTHONWARNINGS ?= ignore::DeprecationWarning

CLI  := $(BIN)/cryptopred
ARGS ?=
# Search budget of `make run`, `make pipeline` and `make train`: candidates per classifier family and forecaster
# candidates. 2 keeps 5 coins of daily data within the 3-minute goal of `make run` on a shared 2-core machine
# (tests/benchmarks/bench_run.py, bench_train.py); the settings' default (12) costs about 3x and, on noisy daily
# data, changes the inner-CV loss by about 0.001 nats.
TRAIN_BUDGET ?= 2

.DEFAULT_GOAL := help
.PHONY: help venv clean-venv \
        run pipeline serve report publish \
        ingest store-info profile train monitor schedule demo-drift evaluate-real forecast-report \
        lab docs test nbtest pytest lint lock export readme screenshot diagram bench

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Setting up
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "cryptopred needs Python >= 3.10; set PYTHON=python3.x")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) ## create .venv and install the project (automatic for every target)

clean-venv: ## remove the virtual environment
	rm -rf $(VENV)

##@ Exploring
lab: $(STAMP) ## register the cryptopred kernel in .venv (not your user dir) and open JupyterLab on nbs/ (ARGS="--no-browser --port 8889")
	$(BIN)/python -m ipykernel install --sys-prefix --name cryptopred --display-name "cryptopred (.venv)"
	$(BIN)/jupyter lab --notebook-dir=nbs $(ARGS)

docs: $(STAMP) ## the library notebooks as a local HTML site in _docs/ (no Quarto): open _docs/index.html
	$(BIN)/python tools/build_docs.py $(ARGS)

##@ The pipeline
run: $(STAMP) ## everything: ingest, profile, train, monitor, report, then serve the app and keep it current (scheduler in the same process; Ctrl-C stops both)
	$(CLI) pipeline --budget $(TRAIN_BUDGET) --serve $(ARGS)

pipeline: $(STAMP) ## the same without serving, for cron and CI (ARGS="--no-pdf --out-dir /tmp/report")
	$(CLI) pipeline --budget $(TRAIN_BUDGET) $(ARGS)

serve: $(STAMP) ## the web UI and the JSON API on http://127.0.0.1:7860 (ARGS="--port 8000"; CRYPTOPRED_HOST to bind elsewhere)
	$(CLI) serve $(ARGS)

report: $(STAMP) ## build the technical report {md,html,pdf,ipynb} from the latest runs into $$CRYPTOPRED_HOME/reports (ARGS="-p strict true")
	$(CLI) run report $(ARGS)

publish: $(STAMP) ## check the home's finished report and copy it into the committed reports/ (the only way it changes)
	$(CLI) publish $(ARGS)

##@ One step at a time
ingest: $(STAMP) ## run the ingest run-book into runs/<ts>_ingest (ARGS="-p source simulated -p days 90")
	$(CLI) run ingest $(ARGS)

store-info: $(STAMP) ## what the local store holds
	$(CLI) store info

profile: $(STAMP) ## whylogs batch profiles of new rows and drift vs the champion's reference (ARGS="-p window 30")
	$(CLI) run profile $(ARGS)

train: $(STAMP) ## train, evaluate and register forecaster and classifier for all coins (ARGS="--kind classifier")
	$(CLI) train --budget $(TRAIN_BUDGET) $(ARGS)

monitor: $(STAMP) ## drift, realized performance, app latency -> alerts and a retraining decision (ARGS="-p app_url http://127.0.0.1:7860")
	$(CLI) run monitor $(ARGS)

schedule: $(STAMP) ## run the scheduler until stopped (ARGS="--list", "--once ingest_daily", "--crontab")
	$(CLI) schedule $(ARGS)

##@ Evidence for the report (slow; their summaries are committed in reports/)
demo-drift: $(STAMP) ## the drift loop on simulated data: regime change -> drift -> alert -> retrain -> promotion -> the app serves it
	$(CLI) demo-drift $(ARGS)

evaluate-real: $(STAMP) ## classifier on every real daily coin -> reports/real_data_evaluation.md (ARGS="-p budget 4")
	$(CLI) run evaluate_real $(ARGS)

forecast-report: $(STAMP) ## score the forecaster (protocol v2: proper scores vs rw/EWMA/GARCH, counted holdout) on ../shared/data/real -> reports/forecast_evaluation.md
	nice -n 10 $(CLI) forecast report --out reports/forecast_evaluation.md

bench: $(STAMP) ## run every tests/benchmarks/bench_*.py, then assemble reports/benchmarks.md (ARGS="-k serve")
	$(BIN)/python tests/benchmarks/run_all.py $(ARGS)

##@ Development
test: $(STAMP) layers nbtest pytest ## the layer contracts, notebook tests and pytest

NETGUARD_LOG := $(CURDIR)/.netguard.log

nbtest: $(STAMP) ## run the tests inside the library notebooks (network guard: loopback only)
	@rm -f $(NETGUARD_LOG)
	PYTHONPATH=$(CURDIR)/tests/netguard NETGUARD_LOG=$(NETGUARD_LOG) $(BIN)/nbdev-test --n-workers 2
	@if [ -s $(NETGUARD_LOG) ]; then echo "network guard: the notebook tests tried to leave loopback:"; cat $(NETGUARD_LOG); exit 1; fi

# Workers for pytest (pytest-xdist): one per core by default; a file's tests stay on one worker, so its module and
# session fixtures are built once per worker that runs it. PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

pytest: $(STAMP) ## run tests/ (integration, fault injection, API, browser, run-books) on every core (PYTEST_WORKERS=0: serially)
	$(BIN)/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile $(ARGS)

lint: $(STAMP) layers ## ruff over notebooks, package and tests, and the layer contracts
	$(BIN)/ruff check nbs cryptopred tests

layers: $(STAMP) ## the import-linter contracts in pyproject.toml: a module imports only from lower layers
	$(BIN)/lint-imports

export: $(STAMP) ## strip notebook noise, then notebooks -> cryptopred/ package (the order CI checks)
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-export

lock: $(STAMP) ## requirements.lock: pip freeze of a fresh virtualenv holding only the built wheel (the image installs it)
	@rm -rf .lock-build && mkdir .lock-build
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --no-index -q . -w .lock-build/dist
	$(PYTHON) -m venv .lock-build/venv
	.lock-build/venv/bin/python -m pip install -q .lock-build/dist/cryptopred-*.whl
	{ head -2 requirements.lock; .lock-build/venv/bin/python -m pip freeze --exclude cryptopred; } > .lock-build/lock && mv .lock-build/lock requirements.lock
	rm -rf .lock-build

readme: $(STAMP) ## write README.md from nbs/index.ipynb (the README is generated, never edited)
	$(BIN)/python -c 'from cryptopred.report.prose import write_readme; print(write_readme())'

screenshot: $(STAMP) ## the browser tests, saving the web app's pictures to reports/figures/frontend*.png: coin view (the report shows it), overview, track record, model card, monitoring, phone
	CRYPTOPRED_SCREENSHOT=$(CURDIR)/reports/figures/frontend.png $(BIN)/python -m pytest tests/test_serve_ui.py -k "first_screen or phone" -q

diagram: $(STAMP) ## render reports/pipeline.dot into reports/figures/pipeline.png (Graphviz)
	$(BIN)/python -c 'from cryptopred.report.render import render_diagram; print(render_diagram())'
