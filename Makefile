# Kubestitch: an OpenTelemetry Collector distribution.
# `make demo` and `make test` are the two commands of the README.

GO        ?= go
BIN       := bin/otelcol-kubestitch
GOFLAGS_BUILD := -trimpath -ldflags="-s -w"
export CGO_ENABLED := 0

.PHONY: all build generate test unit-test demo waterfall cluster-up image lint clean

all: build

## build: the distribution binary, bin/otelcol-kubestitch
build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./distribution

## generate: regenerate distribution/ from builder-config.yaml with ocb
generate:
	tmp=$$(mktemp -d) && TMPDIR=$$tmp $(GO) tool builder --config builder-config.yaml --skip-get-modules --skip-compilation; rc=$$?; rm -rf $$tmp; exit $$rc
	gofmt -w distribution

## test: unit tests and the tests on the real local control plane
test: build
	$(GO) test -count=1 -timeout 60m ./...

## unit-test: only what runs without the local control plane
unit-test:
	$(GO) test -count=1 -short ./...

## demo: local control plane + collector, a 3-replica Deployment, traces in .demo/traces.json
demo: build
	$(GO) run ./cmd/kubestitch-demo --collector $(BIN) --out .demo

## waterfall: print the traces of a file exporter's output as text waterfalls
waterfall:
	$(GO) run ./cmd/kubestitch-waterfall $(or $(FILE),.demo/traces.json)

## cluster-up: a local control plane in the foreground until Ctrl-C
cluster-up:
	$(GO) run ./cmd/localcluster up -dir .localcluster

## image: the container image (needs a container engine; none on the CI machines)
image: build
	docker build -t kubestitch/otelcol-kubestitch:dev -f deploy/Dockerfile .

clean:
	rm -rf bin .demo
