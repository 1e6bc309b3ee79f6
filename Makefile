# Atlassian Bridge — every entry point a developer or CI uses.
#   make dev      the whole system locally (moto + Atlassian simulator + local API gateway)
#   make test     every test (installs what it needs)
#   make package  one Lambda zip per function (arm64; ARCH=x86_64 for Intel)
#   infra/        the CDK app that deploys it (see infra/README.md; `make test-infra` checks it offline)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV     := .venv
PY       := $(VENV)/bin/python
PYTHON   ?= python3
FUNCTIONS := $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml))
ARCH     ?= arm64
DIST     := dist/$(ARCH)
INFRA    := infra
# cfn-lint and checkov get their own venv: checkov pins a boto3 that moto's (in .venv) can't share.
INFRA_VENV := $(INFRA)/.venv

.PHONY: help dev test chaos test-rust test-python test-infra build package bench openapi lint fmt clean fuzz fonts

help:
	@echo "make dev      start moto, the Atlassian simulator and the local gateway; prints a walk-through"
	@echo "make test     run every test (Rust unit tests, simulator, gateway and integration tests, infra)"
	@echo "make test-infra  synthesize the CDK app offline; CDK assertions, cdk-nag, cfn-lint, checkov"
	@echo "make package  build one Lambda zip per function into $(DIST)/ (ARCH=arm64|x86_64)"
	@echo "make bench    latency of the release builds through the local stack"
	@echo "make openapi  regenerate shared/openapi.json and shared/routes.json from the route table and the Rust types"
	@echo "make lint     rustfmt and clippy"
	@echo "make fonts    fetch the CJK font the PDF summaries use into target/fonts/ (pinned Debian package, sha256-checked)"
	@echo "make chaos    the fault campaign at full size (CHAOS_SEED=1, CHAOS_TENANTS=20, CHAOS_PUBLISHES=200, CHAOS_ITEMS=2000)"
	@echo "make fuzz     every fuzz target for FUZZ_SECONDS each (default 60; cargo fuzz, libFuzzer)"

# The Python venv holds the local stack: moto, the simulator's and gateway's deps, pytest.
$(VENV)/.stamp-test: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r tests/requirements.txt
	touch $@

$(VENV)/.stamp-package: functions/requirements.txt $(VENV)/.stamp-test
	$(PY) -m pip install -q -r functions/requirements.txt
	touch $@

$(INFRA_VENV)/.stamp: $(INFRA)/requirements.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install -q --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install -q -r $(INFRA)/requirements.txt
	touch $@

# npm ci whenever node_modules is missing or older than the lock file.
$(INFRA)/node_modules/.stamp: $(INFRA)/package.json $(INFRA)/package-lock.json
	cd $(INFRA) && npm ci --no-audit --no-fund
	touch $@

# Test builds carry the crash points the integration tests use (see shared/src/faults.rs);
# `make package` builds without them.
TEST_FEATURES := --features bridge-shared/fault-injection

# Checkers the tests use: pdftotext (Debian's poppler-utils) reads the PDF summaries back, and
# Atlassian's ADF JSON schema (npm @atlaskit/adf-schema) validates every ADF description, and
# Atlassian's atlassian-jwt (npm) is the reference our Connect query string hash is checked against.
.PHONY: test-tools
test-tools: tests/adf/node_modules/.stamp tests/connect/node_modules/.stamp
	@command -v pdftotext >/dev/null || { apt-get update -qq && apt-get install -y -qq poppler-utils; }

tests/adf/node_modules/.stamp: tests/adf/package.json tests/adf/package-lock.json
	cd tests/adf && npm ci --no-audit --no-fund --loglevel=error
	touch $@

tests/connect/node_modules/.stamp: tests/connect/package.json tests/connect/package-lock.json
	cd tests/connect && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The CJK font (Noto Sans CJK, 19 MB) is too large to compile into publish-page: the functions
# read it from a file (in Lambda the fonts layer, /opt/fonts). tools/fonts/fetch-cjk.sh takes it
# from Debian's fonts-noto-cjk at a pinned version and checks its SHA-256 (tools/fonts/README.md).
CJK_FONT := target/fonts/NotoSansCJK-Regular.ttc
$(CJK_FONT): tools/fonts/fetch-cjk.sh
	tools/fonts/fetch-cjk.sh $(dir $@)
	touch $@

fonts: $(CJK_FONT)

# Every target at once, tests included: the dev-dependencies (tokio's test-util, wiremock's hyper
# server, proptest's regex) add features to shared dependencies, and a `--bins` build resolves
# without them, so on a clean clone it compiled half the dependency graph a second time after
# `cargo test` (2 min 50 s). One feature set for every build shares one set of artifacts.
build: fonts
	cargo build --workspace --all-targets $(TEST_FEATURES)

dev: $(VENV)/.stamp-test build
	$(PY) -m tests.dev

# The installs (Python venvs, npm packages: network and disk more than CPU) run beside the Rust
# lint and tests (CPU), not before them: on a clean clone that hides their minutes. Their output is
# kept in target/test-installs.log and shown when they are done. One cargo runs at a time.
test:
	@mkdir -p target
	@$(MAKE) --no-print-directory test-installs > target/test-installs.log 2>&1 & installs=$$!; \
	rust=0; $(MAKE) --no-print-directory lint test-rust || rust=$$?; \
	installed=0; wait $$installs || installed=$$?; \
	echo "--- installs (target/test-installs.log)"; cat target/test-installs.log; \
	[ $$rust = 0 ] && [ $$installed = 0 ]
	@$(MAKE) --no-print-directory test-python test-infra

.PHONY: test-installs
test-installs: $(VENV)/.stamp-test test-tools $(INFRA)/node_modules/.stamp $(INFRA_VENV)/.stamp

# `build` first, so that `cargo test` finds every test binary built with the bins' feature set.
test-rust: build
	cargo test --workspace $(TEST_FEATURES)

# Two pytest workers (pytest-xdist), each with its own stack (moto, simulator, gateway on free
# ports), a whole file per worker: the suite waits on moto and the simulator more than it computes,
# so two stacks on two cores took it from 15 to 8 minutes. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
test-python: $(VENV)/.stamp-test test-tools build
	$(PY) -m pytest -q $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS) tests

# Offline, no AWS account: a placeholder account (cdk.json holds its AZs) and placeholder zips. The CLI
# synthesizes the two default stacks and a variant with every optional feature for the template checkers.
test-infra: $(INFRA)/node_modules/.stamp $(INFRA_VENV)/.stamp
	cd $(INFRA) && npm test
	cd $(INFRA) && rm -rf cdk.out cdk.out.variant && export CDK_DISABLE_VERSION_CHECK=1 && \
		npm run --silent synth:test && npm run --silent synth:variant
	$(INFRA_VENV)/bin/python $(INFRA)/checks/run_checks.py $(INFRA)/cdk.out $(INFRA)/cdk.out.variant

package: $(VENV)/.stamp-package
	@mkdir -p $(DIST)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release $(if $(filter arm64,$(ARCH)),--arm64,--x86-64) --output-format zip --lambda-dir target/lambda-$(ARCH)
	@for f in $(FUNCTIONS); do cp target/lambda-$(ARCH)/$$f/bootstrap.zip $(DIST)/$$f.zip; done
	@ls -l $(DIST)/*.zip | awk '{printf "%-40s %8.1f KiB\n", $$9, $$5/1024}'
	# The fonts layer (infra: FontsLayer, mounted at /opt): the CJK font and its licence.
	tools/fonts/fetch-cjk.sh $(DIST)/fonts-layer/fonts
	cp shared/assets/fonts/OFL.txt $(DIST)/fonts-layer/fonts/OFL.txt

# The fault campaign (tests/chaos): seeded random faults in the simulator, Lambda's async retries,
# DLQ, duplicate deliveries and instance kills in the gateway; invariants and a table at the end.
# A failing seed reproduces with `make chaos CHAOS_SEED=<seed>` (same sizes). make test runs a short
# fixed-seed campaign (tests/chaos/test_chaos.py).
CHAOS_SEED ?= 1
CHAOS_TENANTS ?= 20
CHAOS_PUBLISHES ?= 200
CHAOS_ITEMS ?= 2000
chaos: $(VENV)/.stamp-test test-tools build
	$(PY) -m tests.chaos --seed $(CHAOS_SEED) --tenants $(CHAOS_TENANTS) --publishes $(CHAOS_PUBLISHES) --items $(CHAOS_ITEMS)

# Latency of the release builds through the local stack; the table is written into the README.
# BENCH_ARGS runs a part, e.g. BENCH_ARGS="--sections load" (the load table alone, the others kept).
BENCH_ARGS ?=
bench: $(VENV)/.stamp-test fonts
	cargo build --release --workspace --bins
	cargo build --release -p bridge-shared --example render_report
	$(PY) -m tests.bench --write-readme $(BENCH_ARGS)

# Fuzzing (fuzz/): libFuzzer through cargo fuzz. Its sanitizer flags are unstable; the one stable
# toolchain here accepts them with RUSTC_BOOTSTRAP=1. The corpus grows in fuzz/corpus/<target>.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= egress_url oauth_state caller_claims event_classification webhook_jwt connect_jwt connect_install forge_fit \
	storage_render pdf_render jira_markup api_bodies
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

openapi:
	BLESS=1 cargo test -p bridge-shared --lib -- api::openapi api::routes events::tests

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets $(TEST_FEATURES) -- -D warnings
	$(PYTHON) tests/check_duplicates.py

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) dist $(INFRA)/cdk.out $(INFRA)/cdk.out.variant $(INFRA)/node_modules $(INFRA_VENV)
