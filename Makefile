# user-service: every target installs what it needs into .venv, from
# constraints.txt, so a machine with only python3 and make can run them.

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
PIP_INSTALL := $(PIP) install -c constraints.txt

# Stamps: reinstall only when the dependency declarations change.
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
GEN_STAMP  := protos/.generated

PROTOS := $(shell find protos -name '*.proto')

PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
# The stamps share one venv; two pip runs into it at once would race.
.NOTPARALLEL:

.PHONY: venv test-deps gen run test lint load bench init-tables lint-docker lock clean

# buf keeps its cache in the venv, never in the user's home; it fetches nothing (see buf.yaml).
export BUF_CACHE_DIR := $(CURDIR)/$(VENV)/buf-cache
BUF := $(VENV)/bin/buf
# The proto as last released (a buf image, as JSON so that a release's diff reads as the API's).
RELEASED_API := protos/released/api.json

venv: $(RUN_STAMP)

test-deps: $(TEST_STAMP)

gen: $(GEN_STAMP)

# The HTTP listener (JWKS, discovery, probes) on 8081 unless the environment says otherwise
# (USER_SERVICE_HTTP_PORT= turns it off); the service itself leaves it off unless a port is set.
run: export USER_SERVICE_HTTP_PORT ?= 8081
run: venv gen
	exec $(VENV)/bin/user-service serve

# Lint first: a style or type error fails the run in seconds, before the 6-minute suite.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Style (ruff check), format (ruff format --check) and strict types (mypy --strict, over the
# packages pyproject.toml's [tool.mypy] lists); then the API: buf lint (buf.yaml's rules) and
# buf breaking against the proto as last released. Nothing is changed.
lint: test-deps gen
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(BUF) breaking --against $(RELEASED_API)

# At a release: the proto as it is now becomes the baseline later changes must not break.
.PHONY: api-baseline
api-baseline: test-deps
	$(BUF) build --exclude-source-info -o '-#format=json' | $(PY) -m json.tool --indent 1 > $(RELEASED_API)

# A bounded load run (loopback only) that ends with a table and a check that no user was lost,
# against an instance of its own; `make load LOAD_ARGS="--target 127.0.0.1:50051"` drives a
# running `make run` instead. `python -m tools.load --help` lists the options.
load: LOAD_ARGS ?= --spawn
load: venv gen
	$(PY) -m tools.load $(LOAD_ARGS)

# The benchmark (a benchmark, not a test): moto, the service and a minimal floor server side by
# side on loopback ports; writes bench-results/results.{json,md} and prints the table and each
# goal's verdict. About 10 minutes; `make bench BENCH_ARGS=--quick` checks the harness in under
# a minute. `python -m tools.bench --help` lists the options.
bench: BENCH_ARGS ?=
bench: venv gen
	$(PY) -m tools.bench $(BENCH_ARGS)

# The bulk-import benchmark (issue 17; a benchmark, not a test): 100,000 generated AspNetUsers rows
# imported by `user-service import-legacy` into moto; prints rows per second.
# `make bench-import-legacy IMPORT_BENCH_ARGS="--rows 1000"` for a quick look.
.PHONY: bench-import-legacy
bench-import-legacy: IMPORT_BENCH_ARGS ?= --rows 100000
bench-import-legacy: venv gen
	$(PY) -m tools.legacy_import_bench $(IMPORT_BENCH_ARGS)

# The scale model (issue 14): units per second of each table and index, the busiest partition
# key against its ceiling and the monthly on-demand cost for a peak workload, from the units per
# RPC of the last `make bench` (or measured now when there are none). Prints the README's table;
# `python -m tools.capacity --help` lists the workload's options.
.PHONY: capacity
capacity: CAPACITY_ARGS ?=
capacity: venv gen
	$(PY) -m tools.capacity $(CAPACITY_ARGS)

# deploy/cloudformation: the stack's template, linted by `make lint` with cfn-lint (in .venv, from
# constraints.txt) and checkov. checkov pins versions that conflict with constraints.txt, so it
# lives in a venv of its own, installed with --no-deps from its exact list (make lock-checkov
# re-resolves it); it runs offline (--skip-download).
CFN_TEMPLATES := deploy/cloudformation/user-service.yaml
CHECKOV_VENV  := .venv-checkov
CHECKOV_LOCK  := deploy/checkov-constraints.txt
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
.PHONY: lint-cloudformation lock-checkov
test-deps: $(CHECKOV_STAMP)
lint: lint-cloudformation
lint-cloudformation: $(TEST_STAMP) $(CHECKOV_STAMP)
	$(VENV)/bin/cfn-lint $(CFN_TEMPLATES)
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  $(addprefix -f ,$(CFN_TEMPLATES))
$(CHECKOV_STAMP): $(CHECKOV_LOCK)
	$(PYTHON3) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --no-deps -r $(CHECKOV_LOCK)
	touch $@
lock-checkov:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON3) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install -q checkov; \
	{ sed -n '1,/^# do not edit/p' $(CHECKOV_LOCK); \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude pip; \
	} > $(CHECKOV_LOCK).new; \
	mv $(CHECKOV_LOCK).new $(CHECKOV_LOCK)

init-tables: venv gen
	$(VENV)/bin/user-service init-tables

lint-docker: test-deps
	$(VENV)/bin/hadolint Dockerfile

# deploy/kubernetes/: every manifest, strictly, against the schemas of the oldest Kubernetes the
# manifests support (the preStop sleep action) and the newest the pinned kubernetes-validate
# knows. `make test` runs the same (tests/unit/test_kubernetes_manifests.py reads these versions)
# and checks what no schema can: probes, settings, Secrets, selectors, the grace period, the uid.
KUBERNETES_VERSIONS := 1.30.0 1.37.0
K8S_MANIFESTS := $(filter-out %/kustomization.yaml,$(wildcard deploy/kubernetes/*.yaml))
.PHONY: validate-kubernetes
validate-kubernetes: test-deps
	for version in $(KUBERNETES_VERSIONS); do \
	  $(VENV)/bin/kubernetes-validate --strict --quiet -k $$version $(K8S_MANIFESTS); \
	done

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[embedded,codegen,dev]'
	touch $@

# The test set (with the lint tools) contains the run set, so it satisfies the run stamp too;
# and the Python client kit (clients/python), which the e2e tests drive the service with.
$(TEST_STAMP): pyproject.toml clients/python/pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[embedded,codegen,dev,test,lint]' -e clients/python
	touch $@ $(RUN_STAMP)

# The client kit's copy (committed, so the kit installs alone) is regenerated with it.
$(GEN_STAMP): $(PROTOS) protos/generate.sh clients/python/generate.py constraints.txt | $(RUN_STAMP)
	PYTHON=$(PY) protos/generate.sh
	$(PY) clients/python/generate.py
	touch $@

# Re-resolves every dependency at its newest allowed version in a throwaway
# venv and pins the result; review the diff before committing it.
lock:
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON3) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install -q -e '.[embedded,codegen,dev,test,lint]'; \
	{ echo "# Exact versions of every runtime, embedded, codegen and test dependency (Python 3.11)."; \
	  echo "# Generated by 'make lock'; do not edit by hand. Used as pip -c by the Makefile and the Dockerfile."; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable --exclude pip; \
	} > constraints.txt.new; \
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .venv-checkov build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis $(GEN_STAMP)
	find protos \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.pyi' \) -delete
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
