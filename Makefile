# Liên Thông: the two commands are `make run` and `make test`.
SHELL     := /bin/bash
GO        ?= go
BIN       := bin/lienthong
DATA_DIR  ?= .lienthong
LISTEN    ?= 127.0.0.1:8443
# Packages whose code is concurrent run under the race detector; `make test`
# runs every package that way, which keeps it simple and still well under
# the CI budget on two cores.
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: build run test bench fuzz vet fmt clean

build:
	$(GO) build -o $(BIN) ./cmd/lienthong

## run: the whole demo federation on embedded defaults: control plane (SQLite, embedded CA,
## examples loaded on first start), four agencies' gateways, a population database of 100,000
## synthetic citizens, and the birth and death registration feeds with a trickle of events
run: build
	./$(BIN) up --data-dir $(DATA_DIR) --listen $(LISTEN) --seed examples/federation.json

## test: vet, then every test (PostgreSQL tests skip unless LIENTHONG_POSTGRES_DSN is set; CI sets it)
test: vet
	$(GO) test $(TESTFLAGS) ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

## bench: benchmark reports, one line per figure: BENCH <suite> <metric> <value> <unit>.
## Suites run one at a time (-p 1): each compares against a baseline measured in the same run.
bench:
	@LIENTHONG_BENCH=1 $(GO) test -p 1 -count=1 -run '^TestBench' -v -timeout 30m ./... | grep -E '^(BENCH|--- FAIL|FAIL|panic)' ; test $${PIPESTATUS[0]} -eq 0

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoadDocument -fuzztime $(FUZZTIME) ./catalog/
	$(GO) test -run '^$$' -fuzz FuzzValidateCSR -fuzztime $(FUZZTIME) ./certs/
	$(GO) test -run '^$$' -fuzz FuzzProjectNeverLeaks -fuzztime $(FUZZTIME) ./gateway/projection/
	$(GO) test -run '^$$' -fuzz FuzzRelayedKind -fuzztime $(FUZZTIME) ./gateway/exchange/
	$(GO) test -run '^$$' -fuzz FuzzCheckWAL -fuzztime $(FUZZTIME) ./catalog/sqlstore/
	$(GO) test -run '^$$' -fuzz FuzzDecoderAgreesWithEncodingJSON -fuzztime $(FUZZTIME) ./gateway/projection/
	$(GO) test -run '^$$' -fuzz FuzzNativeAgreesWithKinOpenAPI -fuzztime $(FUZZTIME) ./gateway/projection/
	$(GO) test -run '^$$' -fuzz FuzzNativeAgreesWithRego -fuzztime $(FUZZTIME) ./policies/
	$(GO) test -run '^$$' -fuzz FuzzParseLogHead -fuzztime $(FUZZTIME) ./controlplane/auditapi/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/jsonstrict/
	$(GO) test -run '^$$' -fuzz FuzzFindDuplicate -fuzztime $(FUZZTIME) ./internal/jsonstrict/
	$(GO) test -run '^$$' -fuzz FuzzMarshalRecord -fuzztime $(FUZZTIME) ./audit/
	$(GO) test -run '^$$' -fuzz 'FuzzParse$$' -fuzztime $(FUZZTIME) ./gateway/feed/event/
	$(GO) test -run '^$$' -fuzz FuzzCheckJSONAgreesWithDecoder -fuzztime $(FUZZTIME) ./gateway/feed/event/
	$(GO) test -run '^$$' -fuzz FuzzAppendStringMatchesEncodingJSON -fuzztime $(FUZZTIME) ./gateway/feed/event/
	$(GO) test -run '^$$' -fuzz FuzzReadHandover -fuzztime $(FUZZTIME) ./gateway/envoy/
	$(GO) test -run '^$$' -fuzz FuzzPeerChain -fuzztime $(FUZZTIME) ./gateway/envoy/

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
