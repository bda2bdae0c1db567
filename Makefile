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
        infra-check infra-docs readme-lists build test unit-test lint fmt demo bench bench-compaction compaction-rounds bench-venv coldstart build-lambdas cargo-lambda dist dist-tools dist-arch dist-sbom dist-deploy clean

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
	@echo "make dist           release artifacts of this version into dist/: function zips and the inlet command (arm64, x86_64), SBOMs, SHA256SUMS"
	@echo "make dist-deploy    infra/examples/basic applied on LocalStack from dist/ (after make dist)"
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
# and the whole pipeline's MiB of JSON per CPU-s beside the peers' one-step conversions. The converter's rounds
# run on the second workload too (target/bench/report-telemetry.json). Not part of test/CI: it needs
# an optimised build. Results: target/bench/report.json. Last, the deployed path on LocalStack
# (E2E_OBJECTS=100, perf binaries as functions): target/bench/e2e.json.
PERF_BUILD := cargo build --profile perf -p inlet-bench -p converter -p compactor

E2E_OBJECTS ?= 100
# The generated workload, one directory per size: the peers read every object in it. The second
# workload (bench/src/telemetry.rs) is shaped unlike the reference one: wide rows, long strings, deep
# nesting, few repeated values, a key order and field set of its own per line.
BENCH_DATA = target/bench/data-$(OBJECTS)
TELEMETRY_DATA = target/bench/telemetry-$(OBJECTS)
# Rounds of Inlet, pyarrow and DuckDB back to back; the table shows medians.
ROUNDS ?= 3
# An earlier build's inlet-bench (BASELINE=/tmp/inlet-bench-main): run in the same rounds as one more
# peer, so the table gives Inlet / baseline for the change being measured.
BASELINE ?=

bench: bench-venv localstack-venv tools-venv
	$(PERF_BUILD)
	target/perf/inlet-bench --objects $(OBJECTS) --data $(BENCH_DATA)
	$(VENV)/bench/bin/python bench/peers.py --data $(BENCH_DATA) --schema schemas/events.schema.json \
	  --threads 1 2 --rounds $(ROUNDS) --inlet-bench "target/perf/inlet-bench --objects $(OBJECTS)" \
	  $(if $(BASELINE),--baseline "$(BASELINE) --objects $(OBJECTS)") --report target/bench/report.json
	target/perf/inlet-bench --workload telemetry --objects $(OBJECTS) --data $(TELEMETRY_DATA)
	$(VENV)/bench/bin/python bench/peers.py --data $(TELEMETRY_DATA) --schema schemas/telemetry.schema.json \
	  --threads 1 --rounds $(ROUNDS) --inlet-bench "target/perf/inlet-bench --workload telemetry --objects $(OBJECTS)" \
	  $(if $(BASELINE),--baseline "$(BASELINE) --workload telemetry --objects $(OBJECTS)") \
	  --report target/bench/report-telemetry.json
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
CARGO_LAMBDA := PATH="$(CURDIR)/$(VENV)/cargo-lambda/bin:$$PATH" cargo lambda
cargo-lambda:
	@$(VENV)/cargo-lambda/bin/cargo-lambda lambda --version 2>/dev/null | grep -q "cargo-lambda $(CARGO_LAMBDA_VERSION) " \
	  || { $(PYTHON) -m venv $(VENV)/cargo-lambda && \
	  $(VENV)/cargo-lambda/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION); }

build-lambdas: cargo-lambda
	$(if $(filter arm64,$(LAMBDA_ARCH)),rustup target add aarch64-unknown-linux-gnu,true)
	$(CARGO_LAMBDA) build --release \
	  $(if $(filter arm64,$(LAMBDA_ARCH)),--arm64,--x86-64) --output-format zip \
	  --lambda-dir target/lambda/$(LAMBDA_ARCH) -p converter -p compactor
	@ls -l target/lambda/$(LAMBDA_ARCH)/*/bootstrap.zip

# The release of the workspace version, into dist/: the function zips for both Lambda
# architectures, the inlet command for Linux on both, SHA256SUMS, a CycloneDX SBOM per binary,
# and BUILD.txt (commit and tool versions). The binaries carry their dependency list
# (cargo-auditable, readable by cargo audit bin and syft). A cold build takes tens of minutes.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
CARGO_AUDITABLE_VERSION := 0.7.7
CARGO_CYCLONEDX_VERSION := 0.5.9
# cargo-lambda runs cargo itself: cargo-auditable joins as the workspace crates' rustc wrapper,
# the way `cargo auditable build` sets it up, with the flags it passes on to cargo metadata.
AUDITABLE := RUSTC_WORKSPACE_WRAPPER="$$(command -v cargo-auditable)" \
  CARGO_AUDITABLE_ORIG_ARGS='{"config":[],"offline":false,"locked":true,"frozen":false}'

dist-tools: cargo-lambda
	@cargo install --list | grep -q "^cargo-auditable v$(CARGO_AUDITABLE_VERSION):" \
	  || cargo install cargo-auditable --locked --version $(CARGO_AUDITABLE_VERSION)
	@cargo install --list | grep -q "^cargo-cyclonedx v$(CARGO_CYCLONEDX_VERSION):" \
	  || cargo install cargo-cyclonedx --locked --version $(CARGO_CYCLONEDX_VERSION)
	rustup target add aarch64-unknown-linux-gnu

dist: dist-tools
	rm -rf dist && mkdir -p dist
	$(MAKE) --no-print-directory dist-arch DIST_ARCH=arm64 DIST_TRIPLE=aarch64-unknown-linux-gnu
	$(MAKE) --no-print-directory dist-arch DIST_ARCH=x86_64 DIST_TRIPLE=x86_64-unknown-linux-gnu
	$(MAKE) --no-print-directory dist-sbom
	{ echo "inlet $(VERSION)"; echo "commit $$(git rev-parse HEAD)$$(git diff --quiet HEAD || echo ' (modified)')"; \
	  rustc --version; $(CARGO_LAMBDA) --version; \
	  cargo install --list | grep -E '^cargo-(auditable|cyclonedx) '; }  > dist/BUILD.txt
	cd dist && sha256sum -- *.zip *.tar.gz *.cdx.json BUILD.txt > SHA256SUMS
	@ls -l dist

dist-arch:
	$(AUDITABLE) $(CARGO_LAMBDA) build --release --locked --target $(DIST_TRIPLE) --output-format zip \
	  --lambda-dir target/dist/$(DIST_ARCH) -p converter -p compactor -p inlet-cli
	for function in converter compactor; do \
	  cp target/dist/$(DIST_ARCH)/$$function/bootstrap.zip dist/inlet-$$function-$(VERSION)-$(DIST_ARCH).zip; done
	tar -czf dist/inlet-$(VERSION)-linux-$(firstword $(subst -, ,$(DIST_TRIPLE))).tar.gz \
	  -C target/$(DIST_TRIPLE)/release inlet -C $(CURDIR) LICENSE

# infra/examples/basic applied on LocalStack from dist/'s x86_64 zips (arm64 binaries cannot run
# on this host) and driven by dist/'s inlet command: S3 -> SQS -> converter -> compactor -> Delta.
dist-deploy: localstack-venv
	mkdir -p target/dist/cli && tar -xzf dist/inlet-$(VERSION)-linux-x86_64.tar.gz -C target/dist/cli inlet
	INLET_RELEASE_DIR=$(CURDIR)/dist INLET_CLI=$(CURDIR)/target/dist/cli/inlet INLET_REQUIRE_TERRAFORM=1 \
	  $(WITH_LOCALSTACK) cargo nextest run --workspace -E 'binary(deploy) & test(the_terraform_example_deploys)'

# One SBOM per shipped binary, named after its artifact; cargo cyclonedx writes one beside each
# package's Cargo.toml, and those of the other binaries are removed.
dist-sbom:
	for pair in arm64:aarch64-unknown-linux-gnu x86_64:x86_64-unknown-linux-gnu; do \
	  arch=$${pair%%:*}; triple=$${pair#*:}; \
	  SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) cargo cyclonedx --format json --spec-version 1.5 \
	    --describe binaries --target $$triple --target-in-filename; \
	  mv functions/converter/converter_bin_$$triple.cdx.json dist/inlet-converter-$(VERSION)-$$arch.cdx.json; \
	  mv functions/compactor/compactor_bin_$$triple.cdx.json dist/inlet-compactor-$(VERSION)-$$arch.cdx.json; \
	  mv cli/inlet_bin_$$triple.cdx.json dist/inlet-$(VERSION)-linux-$${triple%%-*}.cdx.json; \
	  find . -path ./target -prune -o -name "*_bin_$$triple.cdx.json" -exec rm {} +; \
	done

clean:
	-localstack/localstack.sh stop
	rm -rf target .localstack
