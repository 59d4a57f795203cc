# Sluice build and test entry points. `make run` installs only what running
# Sluice needs on a fresh Debian machine (Postgres server binaries, a C
# compiler for pg_query); `make test` also installs psql, the ClickHouse
# server, the MariaDB server and Chromium (the status page's browser test),
# and runs every test with -race. `make
# clickhouse` starts a throwaway ClickHouse server for trying the ClickHouse
# destination.

GO ?= go
GOFLAGS ?=
export CGO_ENABLED := 1

.PHONY: all build run test deps deps-run deps-clickhouse clickhouse unit regress fuzz bench clean

all: build

build:
	@[ -x bin/sluice ] || echo "building bin/sluice: the first build compiles pg_query's C code and takes about 5 minutes"
	$(GO) build -o bin/sluice ./cmd/sluice

## run: start Sluice with zero-config defaults (private catalog under ./sluice-data)
run: deps-run build
	./bin/sluice serve

## clickhouse: a throwaway ClickHouse server on 127.0.0.1:19000 for trying (Ctrl-C stops it and deletes its data)
clickhouse: deps-clickhouse
	@[ -x bin/sluice-clickhouse ] || echo "building bin/sluice-clickhouse: about 5 minutes if no build has compiled pg_query's C code yet"
	$(GO) build -o bin/sluice-clickhouse ./cmd/sluice-clickhouse
	./bin/sluice-clickhouse

## deps: install what the tests need when missing: Postgres server binaries, psql, gcc, clickhouse-server, mariadb-server, chromium (Debian, as root)
deps:
	@./.ci/install-deps test

## deps-run: install only what building and running Sluice needs (Postgres server binaries, gcc)
deps-run:
	@./.ci/install-deps run

deps-clickhouse:
	@./.ci/install-deps clickhouse

## test: unit, integration and regression tests, with the race detector;
## artifacts (the status page's screenshots) are kept in test-artifacts/
test: deps
	$(GO) vet ./...
	SLUICE_TEST_ARTIFACTS=$(CURDIR)/test-artifacts $(GO) test -race -count=1 -timeout 25m ./...

## regress: only the SQL regression files (UPDATE=1 re-blesses expected output)
regress: deps
	$(GO) test -race -count=1 ./regress/ $(if $(UPDATE),-args -update,)

## fuzz: run the parser and the session fuzz targets for a minute each
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=60s -fuzzminimizetime=5s ./sqlext/
	$(GO) test -run='^$$' -fuzz=FuzzSession -fuzztime=60s -fuzzminimizetime=5s ./executor/

clean:
	rm -rf bin

## bench: initial load and CDC against a binary COPY pipe and native replication (SCALE=30; PROFILE=dir writes pprof profiles)
SCALE ?= 30
bench: deps
	$(GO) run ./cmd/sluice-bench -scale $(SCALE) $(if $(PROFILE),-profile $(PROFILE))
