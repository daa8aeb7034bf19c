# Turbina: the two commands a newcomer needs are `make demo` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 20s
export CGO_ENABLED := 1
# Opus transcoding links libopus (scripts/deps.sh installs it); libopusfile is not needed.
export GOFLAGS := -tags=opus,nolibopusfile

.PHONY: build test demo screenshots bench bench-import bench-pacing bench-sip soak lint fuzz deps clean

build: ## build bin/turbina (installs the C libraries it links when missing)
	bash scripts/deps.sh build
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/turbina ./cmd/turbina

deps: ## install the system packages the tests drive (apt), when missing
	bash scripts/deps.sh test

# The packages whose tests take longest, named first: go test starts packages'
# tests in the order named (two at a time on two cores, -p defaults to the CPU
# count), and ./... alone is alphabetical, which left web, the longest, to run
# by itself at the end. ./... adds every other package once.
SLOW_TESTS := ./web ./dialer ./cmd/turbina ./dialer/sip ./storage

test: deps ## vet, run every test with the race detector, and fuzz the CSV import briefly
	$(GO) vet ./...
	$(GO) test -race -timeout 10m $(SLOW_TESTS) ./...
	$(GO) test -run=NONE -fuzz=FuzzImportReader -fuzztime=$(FUZZTIME) ./campaigns/

demo: build ## run the whole system on embedded defaults with a sample campaign
	./bin/turbina demo

screenshots: build ## run the demo and save every page, both languages, both widths, into screenshots/ (not committed)
	$(GO) run ./scripts/screenshots -turbina bin/turbina -out screenshots

bench: bench-import bench-pacing bench-sip ## the benchmarks recorded in BENCHMARKS.md

bench-import: build ## 1,000,000-row CSV import through HTTP vs sqlite3 .import
	bash scripts/deps.sh bench
	bash scripts/bench-import.sh

bench-sip: build ## the whole product vs sipp's own UAC, open-loop at the same rates: each knee and the ratio; the dialer/sip library alone (BENCH_QUICK=1: ~3 min)
	bash scripts/deps.sh bench
	bash scripts/bench-sip.sh

bench-pacing: build ## every example scenario × every pacer into BENCHMARKS.md
	bash scripts/bench-pacing.sh

soak: build ## 30-minute soak (SOAK_DURATION): 100 call attempts/s against sipp, 200 simulated agents; not in CI
	bash scripts/deps.sh bench
	bash scripts/soak.sh

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin turbina-data-demo
