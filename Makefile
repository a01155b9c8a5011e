# ykstack — build, test and run the YubiKey OTP stack.
GO         ?= go
CC         ?= cc
PREFIX     ?= /usr/local
BIN        ?= bin
FUZZTIME   ?= 60s
PAMDIR     ?= $(shell d=$$(pkg-config --variable=libdir pam 2>/dev/null); echo $${d:-/lib/x86_64-linux-gnu}/security)
LIBEXECDIR ?= $(PREFIX)/libexec/ykstack

.PHONY: help build pam test race lint fuzz bench install check run clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build every binary into ./bin
	$(GO) build -o $(BIN)/ $$($(GO) list ./cmd/... | grep -v -e /cmd/pam_yubico_helper -e /cmd/ykvald/ksmadapter)

test: ## the full suite as CI runs it: services, lint, go test -race
	./scripts/test.sh

race: ## go test -race on everything (services must be up)
	$(GO) test -race -count=1 ./...

lint: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

fuzz: ## run every fuzz target for FUZZTIME each (default 60s)
	./scripts/fuzz.sh $(FUZZTIME)

bench: ## benchmarks: decrypt/verify load over loopback HTTP, imports; see docs/BENCHMARKS.md
	./scripts/bench.sh

pam: ## the PAM module: bin/pam/pam_yubico.so and its helper (needs gcc, libpam0g-dev)
	install -d $(BIN)/pam
	$(GO) build -o $(BIN)/pam/pam_yubico_helper ./cmd/pam_yubico_helper
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -DYKPAM_HELPER='"$(LIBEXECDIR)/pam_yubico_helper"' \
		-o $(BIN)/pam/pam_yubico.so pam/module/pam_yubico.c -lpam

install: build pam ## install the binaries into $(PREFIX)/bin, the PAM module into $(PAMDIR)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PAMDIR) $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $$(find $(BIN) -maxdepth 1 -type f ! -name pam_yubico_helper) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(BIN)/pam/pam_yubico.so $(DESTDIR)$(PAMDIR)/pam_yubico.so
	install -m 0755 $(BIN)/pam/pam_yubico_helper $(DESTDIR)$(LIBEXECDIR)/pam_yubico_helper

check: lint test ## everything

run: ## run the stack locally on SQLite (no server needed)
	./scripts/run.sh

clean: ## remove build output
	rm -rf $(BIN)
