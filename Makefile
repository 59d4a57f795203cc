# Sluice build and test entry points. `make test` installs what a fresh
# Debian machine lacks (Postgres server binaries, psql, a C compiler for
# pg_query, the ClickHouse server) and runs every test with -race.

GO ?= go
GOFLAGS ?=
export CGO_ENABLED := 1

.PHONY: all build run test deps unit regress fuzz bench clean

all: build

build:
	$(GO) build -o bin/sluice ./cmd/sluice

## run: start Sluice with zero-config defaults (private catalog under ./sluice-data)
run: deps build
	./bin/sluice serve

## deps: install Postgres server binaries, psql, gcc and clickhouse-server when missing (Debian, as root)
deps:
	@./.ci/install-deps

## test: unit, integration and regression tests, with the race detector
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

## regress: only the SQL regression files (UPDATE=1 re-blesses expected output)
regress: deps
	$(GO) test -race -count=1 ./regress/ $(if $(UPDATE),-args -update,)

## fuzz: run the parser and the session fuzz targets for a minute each
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=60s -fuzzminimizetime=5s ./sqlext/
	$(GO) test -run='^$$' -fuzz=FuzzSession -fuzztime=60s -fuzzminimizetime=5s ./executor/

clean:
	rm -rf bin

## bench: initial load and CDC against a binary COPY pipe and native replication (SCALE=30)
SCALE ?= 30
bench: deps
	$(GO) run ./cmd/sluice-bench -scale $(SCALE)
