#!/usr/bin/env bash
# The full test suite: what README's test command and CI (.ci/run) run.
# Brings up what it needs first (gpg, gcc, libpam headers, a MariaDB server)
# through scripts/test-services.sh, then lint, then every test with -race.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-services.sh
. scripts/test-services.sh

echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go tool staticcheck ./...

echo "== go test -race (MariaDB: ${YKSTACK_TEST_MYSQL})"
go test -race -count=1 -timeout 20m ${TESTFLAGS:-} ./...
