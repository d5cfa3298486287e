# The two commands a newcomer needs: `make dev` and `make test`. Both install what is missing.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help setup dev test test-unit test-integration test-docker test-newcomer faults bench lint proto clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: ## install uv, the Python workspace and ClickHouse when missing
	@scripts/bootstrap.sh

dev: ## run the whole pipeline on an embedded local stack (no Docker, no test tools installed)
	@scripts/bootstrap.sh dev
	uv run --no-sync ponix dev

test: setup ## lint, format check, mypy strict, and the whole test suite
	@scripts/test.sh all

test-unit: setup ## unit tests only
	@scripts/test.sh unit

test-integration: setup ## integration and e2e tests on real servers
	@scripts/test.sh integration

test-docker: setup ## the compose stack and the cluster under Docker: build, up, publish, kill, count, down
	PONIX_TEST_COMPOSE=1 uv run --locked pytest tests/docker -m compose -q

test-newcomer: ## a fresh Debian 12 container: apt-get git make python3, clone, make dev, make test (Docker)
	@tests/docker/newcomer.sh

faults: setup ## the long fault-injection suite
	@scripts/test.sh faults

bench: setup ## the throughput and latency benchmark
	uv run --locked ponix bench

lint: setup ## ruff, format check and mypy only
	@scripts/test.sh lint

proto: setup ## regenerate the envelope code from proto/
	uv run --locked python scripts/gen_protos.py

clean: ## remove the local dev stack's data directory
	rm -rf .ponix
