# Kubestitch: an OpenTelemetry Collector distribution.
# `make demo` and `make test` are the two commands of the README.

GO        ?= go
BIN       := bin/otelcol-kubestitch
GOFLAGS_BUILD := -trimpath -ldflags="-s -w -buildid="
# Release artifacts go under DIST; VERSION overrides builder-config.yaml's
# dist.version (the one place the version lives) for a test release.
DIST      ?= dist
# Only from the command line: a VERSION some shells and CI systems export
# must not rename a build.
ifneq ($(origin VERSION),command line)
VERSION   :=
endif
RELEASE   := $(GO) run ./cmd/kubestitch-release
export CGO_ENABLED := 0

.PHONY: all build generate test preflight testbed unit-test race-test cluster-test shake install-test failover-test scale-test growth-test demo demo-stuck waterfall cluster-up image push release image-name lint clean

all: build

## build: the distribution binary, bin/otelcol-kubestitch
build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./distribution

COMPONENTS := processor/k8sstitchprocessor processor/k8snamespaceprocessor receiver/k8swatchreceiver receiver/k8sadmissionreceiver

## generate: regenerate distribution/ from builder-config.yaml with ocb, and
## each component's telemetry, documentation.md and lifecycle tests from its
## metadata.yaml with mdatagen (tools/); test/generate checks both
generate:
	tmp=$$(mktemp -d) && TMPDIR=$$tmp $(GO) tool builder --config builder-config.yaml --skip-get-modules --skip-compilation; rc=$$?; rm -rf $$tmp; exit $$rc
	gofmt -w distribution
	tmp=$$(mktemp -d) && $(GO) -C tools build -o $$tmp/mdatagen go.opentelemetry.io/collector/cmd/mdatagen && \
	  for c in $(COMPONENTS); do (cd $$c && $$tmp/mdatagen metadata.yaml) || { rm -rf $$tmp; exit 1; }; done; rm -rf $$tmp

## test: unit tests under the race detector, then the tests on the real local control plane
test: preflight build race-test cluster-test

## preflight: what make test needs beyond Go (root, iptables, iproute2, gcc
## for -race, overlayfs), one line for each thing missing
preflight:
	@sh test/preflight.sh

## testbed: build (or find cached) the control plane's binaries, with
## progress lines: go test prints nothing until a package ends, and a cold
## build takes ~20 minutes on 2 cores
testbed:
	$(GO) run ./cmd/localcluster build

## unit-test: only what runs without the local control plane
unit-test:
	$(GO) test -count=1 -short ./...

## race-test: the unit tests under the race detector (it needs cgo; the
## distribution itself is built without)
race-test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -short ./...

## cluster-test: the tests on the real local control plane (test/... and localcluster/...)
cluster-test: testbed
	$(GO) test -count=1 -timeout 60m ./test/... ./localcluster/...

## shake: the control-plane tests N times in a row under a CPU hog per core
shake:
	test/shake/run.sh $(or $(N),5)

## install-test: only the sharded install on two real nodes, from the image make image builds (containerd, runc, CNI, kube-proxy; root); part of cluster-test
install-test: build
	$(GO) test -count=1 -v -timeout 20m -run TestInstallOnContainerd ./test/deploy/

## failover-test: the failover test in its 10-run form on the install of install-test: each run kills, mid-rollout, the collector of the gateway that owns the namespace, that gateway with its pod, and the k8s_watch Lease holder (owning the namespace, and not); a table per death (root, about 40 min); make test runs each death once
failover-test: build
	KUBESTITCH_FAILOVER_RUNS=$(or $(RUNS),10) $(GO) test -count=1 -v -timeout 150m -run TestGatewayFailover ./test/deploy/

## scale-test: the scale run on the install at full size (100 kwok nodes, 6,000 pods alive; root, iptables, about 40 min); make test runs it at a tenth
scale-test: build
	KUBESTITCH_SCALE=full $(GO) test -count=1 -v -timeout 120m -run TestScaleOnTheInstall ./test/deploy/

## growth-test: the gateways' heap, split into informer cache, tracker and owner graph, at 1,000, 5,000 and 20,000 pods alive on the install (100 kwok nodes; root, iptables, about 25 min)
growth-test: build
	KUBESTITCH_GROWTH=1 $(GO) test -count=1 -v -timeout 90m -run TestGatewayMemoryGrowth ./test/deploy/

## demo: local control plane + collector, a 3-replica Deployment, traces in .demo/traces.json, span metrics (SLIs) in .demo/metrics.json
demo: build
	$(GO) run ./cmd/kubestitch-demo --collector $(BIN) --out .demo

## demo-stuck: the demo, plus a Deployment whose image pull fails: its trace shows why it is stuck
demo-stuck: build
	$(GO) run ./cmd/kubestitch-demo --collector $(BIN) --out .demo --stuck

## waterfall: print the traces of a file exporter's output as text waterfalls
waterfall:
	$(GO) run ./cmd/kubestitch-waterfall $(or $(FILE),.demo/traces.json)

## cluster-up: a local control plane in the foreground until Ctrl-C
cluster-up:
	$(GO) run ./cmd/localcluster up -dir .localcluster

## image: the container image, built from Go with no container engine, as an
## OCI image layout at $(DIST)/oci (linux/amd64 and linux/arm64), and the SBOM
## of each platform's binary beside it; the same commit gives the same digest
image:
	$(RELEASE) image -out $(DIST)/oci $(if $(VERSION),-version $(VERSION))

## push: push the layout at LAYOUT (default $(DIST)/oci) to IMAGE (default:
## the name the layout was built with) with the docker config's credentials
## (credential helpers included); prints IMAGE@digest, then each platform's
## manifest
LAYOUT ?= $(DIST)/oci
push:
	$(RELEASE) push -layout $(LAYOUT) $(IMAGE)

## release: what a release ships, in $(DIST)/release: archives for linux and
## darwin on amd64 and arm64, SHA-256 checksums, SBOMs, the image layout
release:
	$(RELEASE) release -out $(DIST)/release $(if $(VERSION),-version $(VERSION))

## image-name: the image reference of this version (what every manifest names)
image-name:
	@$(RELEASE) name

## lint: staticcheck (pinned in tools/go.mod) on the whole module, its
## default checks; .ci/run runs it before the tests
lint:
	tmp=$$(mktemp -d) && $(GO) -C tools build -o $$tmp/staticcheck honnef.co/go/tools/cmd/staticcheck && \
	  $$tmp/staticcheck ./...; rc=$$?; rm -rf $$tmp; exit $$rc

clean:
	rm -rf bin .demo dist
