# Inlet: `make demo` runs the pipeline end to end on LocalStack; `make test` runs every test.
# Both set up what they need (virtualenvs, cargo tools) on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
WITH_LOCALSTACK := localstack/with-localstack.sh
LAMBDA_ARCH ?= arm64
OBJECTS ?= 300

.PHONY: help setup cargo-tools cargo-deny audit localstack-venv tools-venv java localstack-start localstack-stop \
        infra-check infra-docs readme-lists build test unit-test lint fmt demo bench bench-compaction compaction-rounds bench-venv coldstart build-lambdas clean

help:
	@echo "make demo           run the whole pipeline on LocalStack and show the Delta table"
	@echo "make test           unit + LocalStack integration tests"
	@echo "make lint           rustfmt check, the architecture check (tests/architecture.py), cargo deny (licenses, sources, bans), the README's generated lists, clippy with warnings as errors"
	@echo "make audit          cargo deny check advisories (needs GitHub for the RustSec database)"
	@echo "make readme-lists   rewrite the README's metric and alarm lists from shared/src/metrics.rs and monitoring.tf"
	@echo "make infra-check    terraform fmt/validate (offline), checkov, module assertions"
	@echo "make bench          converter throughput and peak memory (OBJECTS=300)"
	@echo "make bench-compaction  the compaction alone beside its peers (OBJECTS=6000 ROUNDS=1: several 256 MiB files)"
	@echo "make build-lambdas  cargo-lambda release zips (LAMBDA_ARCH=arm64|x86_64)"
	@echo "make localstack-start / localstack-stop"

setup: cargo-tools localstack-venv tools-venv java

cargo-tools:
	@cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked

# Known vulnerabilities (RustSec): needs the advisory database from GitHub, which the build
# machines cannot reach; run it where it can be fetched.
audit: cargo-deny
	cargo deny check advisories

# Pinned: a new cargo-deny can add checks that fail a build nothing else changed.
CARGO_DENY_VERSION := 0.20.2
cargo-deny:
	@cargo deny --version 2>/dev/null | grep -q "$(CARGO_DENY_VERSION)" \
	  || cargo install cargo-deny --locked --version $(CARGO_DENY_VERSION)

localstack-venv:
	PYTHON=$(PYTHON) localstack/localstack.sh install

tools-venv: $(VENV)/tools/.installed
$(VENV)/tools/.installed: tests/reader/requirements.txt
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install --quiet --disable-pip-version-check -r tests/reader/requirements.txt
	touch $@

# Spark's Parquet reader (cli/tests/spark.rs) runs on a JVM: the OS's Java 17 when none is here.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; } \
	  || { echo "java is missing and could not be installed: install a Java 17 runtime (openjdk-17-jre-headless)" >&2; exit 1; }

localstack-start: localstack-venv
	localstack/localstack.sh start

localstack-stop:
	localstack/localstack.sh stop

# One debug build of everything (the Lambda bootstraps the LocalStack tests run, the CLI, the
# tests). Always the same cargo invocation: a narrower one (-p converter) unifies features
# differently and rebuilds half the dependency tree.
build:
	cargo build --workspace --all-targets


unit-test: cargo-tools
	cargo nextest run --workspace --exclude inlet-tests

# Terraform: fmt, offline validate (provider mirror), checkov, settings assertions. Says
# SKIPPED loudly when terraform or the mirror is missing.
infra-check:
	infra/check.sh

# Rewrites the inputs and outputs tables of infra/modules/inlet/README.md from the .tf files.
infra-docs:
	$(PYTHON) infra/module_docs.py

# Rewrites the README's metric list (from METRICS in shared/src/metrics.rs) and alarm list (from
# infra/modules/inlet/monitoring.tf); lint fails when they are stale.
readme-lists:
	$(PYTHON) docs/readme_lists.py

# When terraform and the mirror are here, the LocalStack deploy test must run, not skip.
test: setup build infra-check
	cargo nextest run --workspace --no-run
	INLET_REQUIRE_TERRAFORM=$$(infra/check.sh tfrc 2>/dev/null | grep -q . && echo 1 || echo 0) \
	  $(WITH_LOCALSTACK) cargo nextest run --workspace

lint: cargo-deny
	cargo fmt --all --check
	$(PYTHON) tests/architecture.py
	@# Licenses, sources, and the bans of deny.toml (the SDK's legacy HTTP stack among them).
	cargo deny --log-level error check bans licenses sources
	$(PYTHON) docs/readme_lists.py --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

demo: setup build
	$(WITH_LOCALSTACK) target/debug/demo

# The converter core on the reference workload (OBJECTS=10000 for the big run) with compaction; then
# ROUNDS rounds of Inlet, pyarrow, DuckDB and naive arrow-rs back to back on the same files and schema: medians
# and in-round Inlet/peer ratios, so host speed drift cancels. Then the same for the compaction alone:
# the run's staged fragments merged by Inlet, DuckDB, pyarrow and delta-rs' optimize (target/bench/compaction-$(OBJECTS).json),
# and the whole pipeline's MiB of JSON per CPU-s beside the peers' one-step conversions. Not part of test/CI: it needs
# an optimised build. Results: target/bench/report.json. Last, the deployed path on LocalStack
# (E2E_OBJECTS=100, perf binaries as functions): target/bench/e2e.json.
PERF_BUILD := cargo build --profile perf -p inlet-bench -p converter -p compactor

E2E_OBJECTS ?= 100
# The generated workload, one directory per size: the peers read every object in it.
BENCH_DATA = target/bench/data-$(OBJECTS)
# Rounds of Inlet, pyarrow and DuckDB back to back; the table shows medians.
ROUNDS ?= 3

bench: bench-venv localstack-venv tools-venv
	$(PERF_BUILD)
	target/perf/inlet-bench --objects $(OBJECTS) --data $(BENCH_DATA)
	$(VENV)/bench/bin/python bench/peers.py --data $(BENCH_DATA) --schema schemas/events.schema.json \
	  --threads 1 2 --rounds $(ROUNDS) --inlet-bench "target/perf/inlet-bench --objects $(OBJECTS)" \
	  --report target/bench/report.json
	$(MAKE) --no-print-directory compaction-rounds
	target/perf/inlet-bench big-object
	target/perf/inlet-bench shapes
	$(WITH_LOCALSTACK) target/perf/inlet-bench history --localstack
	$(WITH_LOCALSTACK) target/perf/inlet-bench history --sources 1000000 10000000 --per-commit 500 --localstack
	$(WITH_LOCALSTACK) target/perf/inlet-bench history-rebuild --files 100000
	$(WITH_LOCALSTACK) target/perf/inlet-bench freshness
	$(WITH_LOCALSTACK) target/perf/inlet-bench --objects $(E2E_OBJECTS) e2e

# The compaction alone, staged afresh (fragments follow the current encoding): `make bench-compaction
# OBJECTS=6000 ROUNDS=1` is the size that fills several 256 MiB files in one partition.
bench-compaction: bench-venv
	$(PERF_BUILD)
	$(MAKE) --no-print-directory compaction-rounds

compaction-rounds:
	rm -rf target/bench/staged-$(OBJECTS)
	target/perf/inlet-bench --objects $(OBJECTS) --data $(BENCH_DATA) stage --out target/bench/staged-$(OBJECTS)
	$(VENV)/bench/bin/python bench/compaction.py --staged target/bench/staged-$(OBJECTS) \
	  --inlet-bench target/perf/inlet-bench --threads 1 2 --rounds $(ROUNDS) \
	  $(if $(wildcard target/bench/report.json),--converter-report target/bench/report.json) \
	  --report target/bench/compaction-$(OBJECTS).json

# Init and first-invocation time of the function binaries (optimised, x86_64), median of 5.
coldstart: bench-venv
	$(PERF_BUILD)
	$(VENV)/bench/bin/python bench/coldstart.py target/perf/converter --event '{"Records":[]}' \
	  --env INLET_SCHEMA=$(CURDIR)/schemas/events.schema.json --env AWS_REGION=us-east-1 \
	  --env AWS_ACCESS_KEY_ID=cold --env AWS_SECRET_ACCESS_KEY=start
	$(VENV)/bench/bin/python bench/coldstart.py target/perf/compactor --event '{}' \
	  --env INLET_SCHEMA=$(CURDIR)/schemas/events.schema.json --env AWS_REGION=us-east-1 \
	  --env AWS_ACCESS_KEY_ID=cold --env AWS_SECRET_ACCESS_KEY=start

bench-venv: $(VENV)/bench/.installed
$(VENV)/bench/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(VENV)/bench
	$(VENV)/bench/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# Release zips for AWS. Not part of test/CI: a cold release build takes tens of minutes here.
# Pinned, with the zig it brings: a new release can change how the zips are built.
CARGO_LAMBDA_VERSION := 1.9.2
build-lambdas:
	@$(VENV)/cargo-lambda/bin/cargo-lambda lambda --version 2>/dev/null | grep -q "cargo-lambda $(CARGO_LAMBDA_VERSION) " \
	  || { $(PYTHON) -m venv $(VENV)/cargo-lambda && \
	  $(VENV)/cargo-lambda/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION); }
	$(if $(filter arm64,$(LAMBDA_ARCH)),rustup target add aarch64-unknown-linux-gnu,true)
	PATH="$(CURDIR)/$(VENV)/cargo-lambda/bin:$$PATH" cargo lambda build --release \
	  $(if $(filter arm64,$(LAMBDA_ARCH)),--arm64,--x86-64) --output-format zip \
	  --lambda-dir target/lambda/$(LAMBDA_ARCH) -p converter -p compactor
	@ls -l target/lambda/$(LAMBDA_ARCH)/*/bootstrap.zip

clean:
	-localstack/localstack.sh stop
	rm -rf target .localstack
