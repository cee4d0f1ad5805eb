# segfuse — `make help` lists the targets. Every target creates .venv and installs on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/demo.yaml
DEMO_DATA := data/demo
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-all lint folds train demo demo-data pseudo-experiment demo-multiclass clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install segfuse with the pinned stack (constraints.txt)

test: $(STAMP) ## Run the complete test suite (what CI runs; no GPU, no network, no ../shared needed)
	$(BIN)/python -m pytest -q -m "not gpu" $(PYTEST_ARGS)

test-fast: $(STAMP) ## The inner loop: every test except those marked slow (real CLI trainings)
	$(BIN)/python -m pytest -q -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: test ## Same as test (kept for old scripts)

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check pipeline tests bench

$(DEMO_DATA)/sample_submission.csv: | $(STAMP)
	$(BIN)/pipeline demo-data $(DEMO_DATA) --cars 8 --views 6 --test-cars 1

demo-data: $(DEMO_DATA)/sample_submission.csv ## Generate the synthetic Carvana-layout demo dataset (data/demo)

folds: $(STAMP) ## Make folds for CONFIG (default configs/demo.yaml)
	$(BIN)/pipeline folds $(CONFIG)

train: $(STAMP) ## Train every fold x resolution of CONFIG (resumable; FOLD=k for one fold)
	$(BIN)/pipeline train $(CONFIG) --fold $(or $(FOLD),all)

demo: $(STAMP) ## Run the main job end to end on the built-in demo dataset (data, folds, train, predict, tune, ensemble, submission)
	$(BIN)/pipeline demo

data/driving/masks: | $(STAMP)
	$(BIN)/pipeline driving-data data/driving --frames 48 --test-frames 8 --size 288x216

demo-multiclass: data/driving/masks ## Multi-class demo: synthetic comma10k-style frames, folds, train, predict, colour-mask ensemble
	$(BIN)/pipeline folds configs/driving_demo.yaml
	$(BIN)/pipeline train configs/driving_demo.yaml
	$(BIN)/pipeline predict configs/driving_demo.yaml
	$(BIN)/pipeline ensemble configs/ensemble_driving_demo.yaml --overwrite

pseudo-experiment: $(STAMP) ## Demo + a pseudo-label round; compares OOF Dice with/without, fold by fold
	$(BIN)/pipeline demo
	$(BIN)/pipeline pseudo demo-ensemble --round 1 --rule band --tau 0.15 --top-n 6 --force
	$(BIN)/pipeline train configs/demo_pseudo.yaml --force
	$(BIN)/pipeline predict configs/demo_pseudo.yaml --split oof
	$(BIN)/pipeline compare demo-unet-r18_128x192 demo-unet-r18-pseudo_128x192

clean: ## Remove generated data and artifacts (keeps .venv)
	rm -rf data/demo artifacts folds/*.csv folds/*.yaml
