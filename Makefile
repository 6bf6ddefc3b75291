# The two commands the README promises, plus their parts.
#
#   make test   set-up (idempotent) + fmt + clippy + every test, real services
#   make setup  install the pinned tools only (scripts/setup-dev)
#
# Why a Makefile and not a shell script: `make test` is what people type
# first, and the targets document the parts without reading bash.

CARGO ?= cargo

.PHONY: test setup fmt-check clippy cargo-test

test: setup fmt-check clippy cargo-test

setup:
	scripts/setup-dev

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

cargo-test:
	$(CARGO) test --all-targets --locked
