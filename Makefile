# kserve-model-monitoring: every workflow has a target. `make help` lists them.
#
# The two commands that matter on a fresh clone:
#   make demo   the whole monitoring loop on this machine, no cluster needed (installs only what it runs)
#   make test   every test tier (installs everything first)

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
PYTEST := $(REPO)/ci/run-pytest.sh
TOOLS_BIN := $(REPO)/.tools/bin
CHART := charts/kserve-model-monitoring
# Tools built by ci/install-tools.sh come first on PATH; helm finds the unittest plugin here.
export PATH := $(TOOLS_BIN):$(PATH)
export HELM_PLUGINS := $(REPO)/.tools/helm-plugins
# Helm keeps its repository cache and config inside the repo, never in the user's home.
export HELM_CACHE_HOME := $(REPO)/.tools/helm/cache
export HELM_CONFIG_HOME := $(REPO)/.tools/helm/config
export HELM_DATA_HOME := $(REPO)/.tools/helm/data

IMAGE_REGISTRY ?= ghcr.io/kserve-model-monitoring
IMAGE_TAG ?= 0.1.0
VALUES ?=

# ci/install-tools.sh installs in groups; a group whose inputs and tools are unchanged says so in one line.
# `make test` checks every group once, then runs its tiers with KMM_SETUP_CHECKED=1 (no more checks).
INSTALL_TOOLS := $(if $(KMM_SETUP_CHECKED),:,ci/install-tools.sh)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

# --- setup --------------------------------------------------------------------------------------
.PHONY: setup setup-demo setup-chart setup-kube setup-kserve-manager setup-spark
setup: ## install every tool group below, pinned, idempotent (apt, pip and Go builds run side by side)
	@$(INSTALL_TOOLS) all

setup-demo: ## what `make demo` runs: .venv, Debian's prometheus/promtool, helm, KServe's agent
	@$(INSTALL_TOOLS) demo

setup-chart: ## chart test tools: kubeconform, helm-unittest, ct, helm-docs, checkov, schema sources
	@$(INSTALL_TOOLS) chart

setup-kube: ## the Kubernetes control plane: Debian's etcd, kube-apiserver (ci/build-kube-apiserver.sh)
	@$(INSTALL_TOOLS) kube

setup-kserve-manager: ## KServe's controller and webhooks, for the Kubernetes tier
	@$(INSTALL_TOOLS) kserve-manager

setup-spark: ## the batch job's Spark engine: Java 17 (Debian's openjdk-17-jre-headless if missing), pyspark in .venv
	@$(INSTALL_TOOLS) spark

.PHONY: constraints
constraints: ## re-resolve ci/constraints.txt from the three pyproject.toml files
	ci/update-constraints.sh

# --- tests --------------------------------------------------------------------------------------
.PHONY: test
test: setup ## run every test tier: lint, unit and service tests, chart, rules, end to end, Kubernetes API
	$(MAKE) --no-print-directory KMM_SETUP_CHECKED=1 lint
	$(MAKE) --no-print-directory KMM_SETUP_CHECKED=1 test-settings test-predictor test-drift-detector test-retrainer
	$(MAKE) --no-print-directory KMM_SETUP_CHECKED=1 chart-test rules-test dashboards-test
	$(MAKE) --no-print-directory KMM_SETUP_CHECKED=1 test-e2e test-batch test-k8s
	@echo "make test: all tiers passed"

.PHONY: lint
lint: setup-demo ## ruff on all Python code; every benchmark script still imports (make test does not run them)
	$(VENV)/bin/ruff check images tests demo
	$(VENV)/bin/ruff format --check images tests demo
	@for b in images/*/bench/bench_*.py; do \
	  $(PY) -c 'import runpy, sys; runpy.run_path(sys.argv[1], run_name="import_check")' $$b \
	    || { echo "lint: $$b no longer imports"; exit 1; }; \
	done; echo "lint: every benchmark script imports"

.PHONY: test-settings
test-settings: setup-demo ## the shared settings loader (images/settings): every kind, precedence, errors
	$(PYTEST) images/settings/tests

.PHONY: test-predictor
test-predictor: setup-demo ## predictor unit and service tests
	$(PYTEST) images/predictor/tests

.PHONY: test-drift-detector
test-drift-detector: setup-demo demo-model ## drift detector unit, parity and service tests (incl. the demo reference)
	$(PYTEST) images/drift-detector/tests

.PHONY: test-retrainer
test-retrainer: setup-demo ## retrain controller unit tests and tests against a real Prometheus
	$(PYTEST) images/retrainer/tests

.PHONY: chart-lint
chart-lint: setup-demo setup-chart ## helm lint --strict and ct lint over every ci/*-values.yaml scenario
	ci/chart-lint.sh

.PHONY: chart-render
chart-render: setup-demo ## print the chart's render (offline stand-in dependency); VALUES=file to override
	@ci/chart-render.sh $(VALUES)

.PHONY: chart-docs
chart-docs: setup-demo setup-chart ## regenerate the chart README parameter table from values.yaml comments (helm-docs)
	helm-docs --chart-search-root $(CHART) --template-files README.md.gotmpl

# image package:settings table -> README whose settings table is generated from it
SETTINGS_DOCS := monitored_predictor.cli:TABLE=images/predictor/README.md \
  drift_detector.config:TABLE=images/drift-detector/README.md \
  retrain_controller.config:TABLE=images/retrainer/README.md

.PHONY: settings-docs
settings-docs: setup-demo ## regenerate each image README's settings table from its settings table (kmm_settings)
	@for pair in $(SETTINGS_DOCS); do $(PY) -m kmm_settings.reference "$${pair%%=*}" "$${pair#*=}"; done

.PHONY: chart-test
chart-test: chart-lint ## helm-unittest suites, strict schema validation of every render, security scan
	helm unittest --strict $(CHART)
	$(PYTEST) tests/chart

.PHONY: rules-test
rules-test: setup-demo ## promtool check + test rules on the PrometheusRule rendered from the chart
	$(PYTEST) tests/rules

.PHONY: dashboards
dashboards: ## copy dashboards/*.json into the chart (files/dashboards/)
	mkdir -p $(CHART)/files/dashboards
	rm -f $(CHART)/files/dashboards/*.json
	cp dashboards/*.json $(CHART)/files/dashboards/

.PHONY: dashboards-test
dashboards-test: setup-demo ## lint every dashboard, check the chart copies are current, parse every PromQL
	$(PYTEST) tests/dashboards

.PHONY: test-e2e
test-e2e: setup-demo setup-kube demo-model ## predictor behind KServe's agent, drift detector, retrainer, Prometheus with the chart's rules; kube-apiserver for the retrain guard
	$(PYTEST) tests/e2e

.PHONY: test-batch
test-batch: setup-demo setup-spark demo-model ## batch mode: KServe's agent logs to S3 (moto, loopback) in blob mode; batch results (local and Spark engines) equal the online detector's
	$(PYTEST) tests/batch

.PHONY: test-k8s
test-k8s: setup-demo setup-kube setup-kserve-manager setup-spark demo-model ## kube-apiserver, etcd, kube-controller-manager and KServe's manager + webhooks: helm install reconciled by KServe, restricted PSS, retrainer RBAC; Spark executors started from the Pods the batch driver creates
	$(PYTEST) tests/k8s

# --- demo ---------------------------------------------------------------------------------------
# Deterministic output: trained once, again only when the script or the pinned environment changes.
# The target is the last file make_model.py writes, so an interrupted run trains again.
DEMO_MODEL := build/demo/holdout.parquet
# setup-demo is order-only: it provides .venv, and its check alone never makes the model stale.
$(DEMO_MODEL): demo/make_model.py ci/constraints.txt | setup-demo
	$(PY) demo/make_model.py --out build/demo

.PHONY: demo-model
demo-model: $(DEMO_MODEL) ## train the demo classifier: build/demo/model/ and build/demo/reference.parquet

.PHONY: demo
demo: setup-demo demo-model ## the whole monitoring loop on this machine: traffic, drift, alert, retrain decision
	$(PY) demo/run_demo.py

# --- benchmarks ---------------------------------------------------------------------------------
.PHONY: bench
bench: setup-demo setup-spark demo-model ## benchmarks of every component, each a markdown table with ratios to its baseline
	@for b in images/*/bench/bench_*.py; do echo; echo "### $$b"; $(PY) $$b; done

.PHONY: bench-first-run
bench-first-run: ## a new user's first run: fresh clone, empty Go/pip caches, `make demo` then `make test` timed
	ci/bench-first-run.sh $(BENCH_FIRST_RUN_ARGS)

# --- for users with Docker or a cluster ---------------------------------------------------------
.PHONY: images
images: ## docker build the three images and drift-detector-spark, the batch job on Spark (needs a Docker engine)
	for img in predictor drift-detector retrainer; do \
	  docker build -f images/$$img/Dockerfile -t $(IMAGE_REGISTRY)/$$img:$(IMAGE_TAG) . ; \
	done
	docker build -f images/drift-detector/Dockerfile.spark -t $(IMAGE_REGISTRY)/drift-detector-spark:$(IMAGE_TAG) .

.PHONY: kind-e2e
kind-e2e: ## kind cluster + chart-testing install (needs Docker, kind and network)
	ci/kind-e2e.sh

.PHONY: clean
clean: ## remove build output, tools and the virtual environment
	rm -rf build .tools .venv .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
