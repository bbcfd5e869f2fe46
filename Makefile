# Skein: the two commands that always work are `make run` and `make test`.
CARGO ?= cargo
PG_URL ?= $(or $(SKEIN_TEST_POSTGRES_URL),postgres://postgres@127.0.0.1:5432/test)

.PHONY: run test lint openapi bench build install clean

## Start the server on the embedded SQLite database (./data/) with defaults.
run:
	$(CARGO) run --release -p skein -- serve

## Every test: domain, persistence and API on SQLite and PostgreSQL, the real
## binary end to end, and the published Python clients.
test:
	@pg_isready -q -d "$(PG_URL)" || { echo "PostgreSQL is not reachable at $(PG_URL); start it (docs/operations.md) or set PG_URL/SKEIN_TEST_POSTGRES_URL" >&2; exit 1; }
	$(CARGO) build -p skein
	SKEIN_TEST_POSTGRES_URL="$(PG_URL)" $(CARGO) test --workspace
	$(CARGO) run -q -p skein-domain --example lifecycle

## Formatting, clippy with warnings denied, and the domain purity check.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	./scripts/check-domain-deps.sh

## Regenerate the committed OpenAPI document.
openapi:
	$(CARGO) run -q -p skein -- openapi > openapi/openapi.json

## Benchmarks (release build, loopback only); results go to docs/benchmarks.md by hand.
bench:
	./scripts/bench.sh

build:
	$(CARGO) build --workspace

## Install the `skein` binary into Cargo's bin directory (~/.cargo/bin).
install:
	$(CARGO) install --locked --path crates/server

clean:
	$(CARGO) clean
	rm -rf build
