# The two commands the README promises, plus their parts.
#
#   make test   set-up (idempotent) + fmt + clippy + every test, real services
#   make setup  install the pinned tools only (scripts/setup-dev)
#   make demo   the main job on local defaults: Git/OpenBao → Secret via the controller
#   make demo-lint  generate a small labelled GitOps repo and lint it
#
# Why a Makefile and not a shell script: `make test` is what people type
# first, and the targets document the parts without reading bash.

CARGO ?= cargo
# bash for `pipefail` in cargo-test (the summary must not hide a failure).
SHELL := /bin/bash

.PHONY: test setup fmt-check clippy cargo-test demo demo-lint

test: setup fmt-check clippy cargo-test

setup:
	scripts/setup-dev

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

# cargo prints one "test result" line per test binary, the last of which is
# often an example with no tests; the summary line totals them all.
cargo-test:
	mkdir -p target
	set -o pipefail; $(CARGO) test --all-targets --locked 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f}' target/test-output.log

# The README's "main job" command: installs the tools (idempotent), starts a
# local control plane and OpenBao, runs the real `sealgate controller`, and
# shows a Secret appear, rotate, and a tampered SopsSecret refused
# (examples/demo.rs); everything it starts is stopped when it ends.
demo: setup
	$(CARGO) build --bin sealgate --example demo
	target/debug/examples/demo target/debug/sealgate

# A two-application GitOps repository with planted secrets and decoys
# (tests/support/corpus.rs), then `sealgate lint` on it. Exit 1 from lint is
# the point of the demo (it found the planted secrets), so it is not an error.
DEMO_DIR ?= /tmp/sealgate-demo
demo-lint:
	rm -rf $(DEMO_DIR)
	$(CARGO) run --quiet --example gen_corpus -- $(DEMO_DIR)/repo 2
	$(CARGO) run --quiet -- lint --no-config $(DEMO_DIR)/repo; test $$? -eq 1
