#!/usr/bin/env bash
# The benchmarks behind `make bench`: decrypt and verify load over loopback
# HTTP (and HTTPS) with keep-alive (ykbench), and the import of 100,000 keys. Servers run
# on 127.0.0.1 on free ports with throwaway databases (SQLite files in a
# temporary directory, fresh MariaDB databases dropped at the end).
#
# Results go to a JSON-lines file and, as Markdown tables, into the section
# of docs/BENCHMARKS.md between the "bench results" markers.
#
# Settings (environment):
#   BENCH_DURATION=10s  BENCH_WARMUP=2s      measured time and warmup per run
#   BENCH_CONCURRENCY="1 8 32"               concurrency levels
#   BENCH_KEYS=10000                         keys in the KSM databases
#   BENCH_REPLAY_KEYS=2000                   keys the replay runs use
#   BENCH_IMPORT_KEYS=100000                 keys ykksm-import imports
#   BENCH_CLIENT=raw                         ykbench's HTTP client: raw or std
#   BENCH_SCENARIOS="gobench baseline ksm-sqlite ksm-sqlite-tls ksm-sqlite-sealed ksm-mariadb import val-sqlite val-mariadb val-replay std-client"
#                    also: ksm-sqlite-mtls val-sqlite-tls (left out of the default to keep it under
#                    10 minutes). The -tls, -mtls and -sealed runs alternate with their plaintext
#                    scenario's (ksm-sqlite, val-sqlite), and `ykbench report` compares them.
#   BENCH_REPEAT=1                           runs of each (plaintext, TLS/sealed) pair per concurrency
#   BENCH_GOBENCHTIME=300ms                  -benchtime of the Go micro-benchmarks
#   BENCH_GOBENCH=REGEXP                     which of them (default: bench_test.go's; "." for all)
#   BENCH_RESULTS=FILE                       results file (default: a new file in $TMPDIR)
#   BENCH_UPDATE_DOCS=1                      rewrite docs/BENCHMARKS.md's results section (0: only print)
#   BENCH_PIN=S:G                            run the servers on CPUs S and ykbench's load runs on CPUs G
#                                            (taskset lists, e.g. 0:1), so the generator's work does not
#                                            take the servers' CPU; default: no pinning
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-2s}
concurrency=${BENCH_CONCURRENCY:-1 8 32}
nkeys=${BENCH_KEYS:-10000}
replay_keys=${BENCH_REPLAY_KEYS:-2000}
import_keys=${BENCH_IMPORT_KEYS:-100000}
client=${BENCH_CLIENT:-raw}
repeat=${BENCH_REPEAT:-1}
scenarios=${BENCH_SCENARIOS:-gobench baseline ksm-sqlite ksm-sqlite-tls ksm-sqlite-sealed ksm-mariadb import val-sqlite val-mariadb val-replay std-client}
gobenchtime=${BENCH_GOBENCHTIME:-300ms}
gobench=${BENCH_GOBENCH:-^Benchmark(Decrypt|Split|Generate|Decrypter|DecryptHandler|Lookup|Import)\$}
update_docs=${BENCH_UPDATE_DOCS:-1}
pin=${BENCH_PIN:-}
docs=$root/docs/BENCHMARKS.md

say() { printf 'bench: %s\n' "$*" >&2; }
want() { case " $scenarios " in *" $1 "*) return 0 ;; esac; return 1; }
case $repeat in '' | *[!0-9]* | 0) echo "bench: BENCH_REPEAT must be a positive number" >&2; exit 2 ;; esac
pin_srv=() pin_gen=()
if [ -n "$pin" ]; then
	case $pin in *?:?*) ;; *) echo "bench: BENCH_PIN must be SERVER-CPUS:GENERATOR-CPUS, e.g. 0:1" >&2; exit 2 ;; esac
	command -v taskset >/dev/null || { echo "bench: BENCH_PIN needs taskset (util-linux)" >&2; exit 2; }
	pin_srv=(taskset -c "${pin%%:*}") pin_gen=(taskset -c "${pin#*:}")
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ykstack-bench.XXXXXX")
results=${BENCH_RESULTS:-$work/results.jsonl}
keep_results=${TMPDIR:-/tmp}/ykstack-bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl
bin=$work/bin
pids=()
dbs=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	for db in "${dbs[@]}"; do
		"$bin/ykbench" dropdb --admin "$YKSTACK_TEST_MYSQL" "$db" >/dev/null 2>&1 || say "could not drop database $db"
	done
	[ -f "$results" ] && [ -z "${BENCH_RESULTS:-}" ] && cp "$results" "$keep_results" && say "results kept in $keep_results"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- services and binaries ---------------------------------------------------
have_mysql=0
if want ksm-mariadb || want val-mariadb || want import || want gobench; then
	# shellcheck source=scripts/test-services.sh
	. scripts/test-services.sh
	[ -n "${YKSTACK_TEST_MYSQL:-}" ] && have_mysql=1
fi
: "${YKSTACK_TEST_MYSQL:=}"

say "building into $bin"
mkdir -p "$bin"
go build -o "$bin/" ./cmd/ykbench ./cmd/ykksmd ./cmd/ykksm-gen-keys ./cmd/ykksm-import ./cmd/ykval-gen-clients ./cmd/ykksm-seal
have_vald=0
if [ -f cmd/ykvald/main.go ] && go build -o "$bin/" ./cmd/ykvald 2>"$work/ykvald-build.log"; then
	have_vald=1
else
	say "ykvald does not build here (yet); VAL scenarios skipped"
fi
yb=$bin/ykbench
if [ "$have_mysql" = 1 ]; then
	"$yb" mkdb --admin "$YKSTACK_TEST_MYSQL" "ykbench_probe_$$" >/dev/null 2>&1 &&
		"$yb" dropdb --admin "$YKSTACK_TEST_MYSQL" "ykbench_probe_$$" >/dev/null 2>&1 || have_mysql=0
fi
if [ "$have_mysql" != 1 ] && { want ksm-mariadb || want val-mariadb || want import; }; then
	say "no MariaDB server: MariaDB scenarios skipped"
fi

fs_type=$(df -PT "$work" | awk 'NR==2{print $2}')
admin_arg=()
[ "$have_mysql" = 1 ] && admin_arg=(--admin "$YKSTACK_TEST_MYSQL")
"$yb" machine "${admin_arg[@]}" --out "$results" \
	"duration=$duration" "warmup=$warmup" "concurrency=$concurrency" "ykbench client=$client" "repeats of the TLS/sealed pairs=$repeat" \
	"CPU pinning (servers:ykbench)=${pin:-none}" \
	"keys in KSM=$nkeys" "filesystem of the databases=$fs_type ($work)" >&2

# --- helpers -----------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)

# proc_cpu PID: the process's user+system CPU time in clock ticks.
proc_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# start NAME LOGFILE CMD...: starts a server in the background; sets $last_pid.
start() {
	local name=$1 logf=$2
	shift 2
	"${pin_srv[@]}" "$@" >"$logf" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
	say "started $name (pid $last_pid): $*"
}

# stop PID: stops a server started by start.
stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local p rest=()
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
	pids=("${rest[@]}")
}

# ready URL LOGFILE [WAIT-FLAGS...]: waits for a server (an https URL with
# ykbench's --cacert, --cert, --key), or shows its log and fails.
ready() {
	"$yb" wait "${@:3}" "$1" 30s || { say "server did not come up; its log:"; tail -20 "$2" >&2; exit 1; }
}

# measure LABEL C "PID:NAME ..." CMD...: runs one ykbench load run at
# concurrency C and records each server's CPU time and peak RSS (VmHWM,
# reset before the run where the kernel allows it).
measure() {
	local label=$1 c=$2 procs=$3
	shift 3
	local p pid t0 t1 out cpu0=() i=0
	for p in $procs; do
		pid=${p%%:*}
		echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
		cpu0+=("$(proc_cpu "$pid")")
	done
	say "$label c=$c; $(uptime | sed 's/^.*load/load/')"
	t0=$(date +%s.%N)
	last_json=
	if out=$("${pin_gen[@]}" "$@" --label "$label" -c "$c" --duration "$duration" --warmup "$warmup" --client "${run_client:-$client}" --out "$results"); then
		grep -v '^{' <<<"$out" >&2 || true
		last_json=$(grep '^{' <<<"$out" || true)
	else
		say "$label c=$c: ykbench failed"
	fi
	t1=$(date +%s.%N)
	for p in $procs; do
		pid=${p%%:*}
		awk -v l="$label" -v c="$c" -v cl="${run_client:-$client}" -v n="${p#*:}" -v cpu0="${cpu0[$i]}" -v cpu1="$(proc_cpu "$pid")" -v tck="$clk_tck" \
			-v hwm="$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")" -v t0="$t0" -v t1="$t1" \
			'BEGIN{printf "{\"kind\":\"server\",\"label\":\"%s\",\"client\":\"%s\",\"concurrency\":%d,\"server\":\"%s\",\"peak_rss_kib\":%d,\"cpu_s\":%.3f,\"wall_s\":%.3f}\n", l, cl, c, n, hwm, (cpu1-cpu0)/tck, t1-t0}' >>"$results"
		i=$((i + 1))
	done
}

# next_counter: the first session counter the last val run left unused
# (nothing when it failed).
next_counter() { grep -o '"next_counter":[0-9]*' <<<"$last_json" | cut -d: -f2 || true; }

# timed LABEL KEYS INPUT OUTPUT CMD...: runs a one-shot command with stdin
# from INPUT and stdout to OUTPUT, and records its wall time and peak RSS.
timed() {
	local label=$1 keys=$2 in=$3 out=$4 ok=true secs rss=0 t0 t1
	shift 4
	t0=$(date +%s.%N)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%M' -o "$work/time.out" "$@" <"$in" >"$out" 2>"$work/timed.log" || ok=false
		rss=$(tail -1 "$work/time.out" | tr -dc 0-9)
	else
		"$@" <"$in" >"$out" 2>"$work/timed.log" || ok=false
	fi
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
	[ "$ok" = true ] || { say "$label failed:"; tail -5 "$work/timed.log" >&2; }
	say "$label: $keys keys in $secs s (ok=$ok)"
	printf '{"kind":"import","label":"%s","keys":%d,"seconds":%s,"peak_rss_kib":%d,"ok":%s}\n' "$label" "$keys" "$secs" "${rss:-0}" "$ok" >>"$results"
}

# mkdb NAME: creates a MariaDB database, dropped at exit; sets $dsn to its DSN.
mkdb() {
	dbs+=("$1")
	"$yb" dropdb --admin "$YKSTACK_TEST_MYSQL" "$1" >/dev/null
	dsn=$("$yb" mkdb --admin "$YKSTACK_TEST_MYSQL" "$1")
}

url() { echo "http://127.0.0.1:$1"; }
surl() { echo "https://127.0.0.1:$1"; }

# --- data --------------------------------------------------------------------
keys=$work/keys.csv
"$bin/ykksm-gen-keys" --urandom 1 "$nkeys" >"$keys"
ksm_sqlite=sqlite:$work/ksm.db
"$yb" seed --db "$ksm_sqlite" --keys "$keys" >&2

# TLS files for the TLS scenarios: a throwaway CA, a server certificate for
# 127.0.0.1 and a client certificate (ECDSA P-256), and ykbench's flags to
# trust the server ($tls_client) and also to show the client certificate
# ($mtls_client).
tlsdir=$work/tls
tls_server=(--tls-cert "$tlsdir/server.crt" --tls-key "$tlsdir/server.key")
tls_client=(--cacert "$tlsdir/ca.crt")
mtls_client=(--cacert "$tlsdir/ca.crt" --cert "$tlsdir/client.crt" --key "$tlsdir/client.key")
if want ksm-sqlite-tls || want ksm-sqlite-mtls || want val-sqlite-tls; then
	mkdir -m 700 "$tlsdir"
	"$yb" gencert --dir "$tlsdir" >&2
fi
# For ksm-sqlite-sealed: the same keys in a second database, every AES key
# sealed under a new KEK (ykksm-seal, as docs/OPERATIONS.md does it).
if want ksm-sqlite-sealed; then
	"$yb" seed --db "sqlite:$work/ksm-sealed.db" --keys "$keys" >&2
	"$bin/ykksm-seal" gen-kek "$work/kek" >/dev/null
	"$bin/ykksm-seal" seal --database "sqlite:$work/ksm-sealed.db" --kek-file "$work/kek" >&2
fi

# --- Go micro-benchmarks -----------------------------------------------------
if want gobench; then
	say "go test -bench (benchtime $gobenchtime)"
	go test -run '^$' -bench "$gobench" -benchtime "$gobenchtime" ./otp ./ksm/ksmserver ./ksm/sqlstore 2>&1 | tee "$work/gobench.txt" | grep '^Benchmark' >&2 || true
	awk '/^Benchmark/ && $4 == "ns/op" {extra=""; for (i = 5; i < NF; i += 2) extra = extra $i " " $(i+1) "; "; sub(/; $/, "", extra);
		printf "{\"kind\":\"gobench\",\"name\":\"%s\",\"ns_per_op\":%s,\"extra\":\"%s\"}\n", $1, $3, extra}' "$work/gobench.txt" >>"$results"
fi

# --- baseline: a bare Go server answering one fixed line ---------------------
baseline_line='OK counter=0001 low=8d40 high=0f use=00'
baseline() {
	local port pid
	port=$("$yb" freeport)
	start baseline "$work/baseline.log" "$yb" baseline --listen "127.0.0.1:$port"
	pid=$last_pid
	ready "$(url "$port")/" "$work/baseline.log"
	for c in ${1:-$concurrency}; do
		measure baseline "$c" "$pid:ykbench-baseline" "$yb" ksm --url "$(url "$port")" --keys "$keys" --expect "$baseline_line"
	done
	stop "$pid"
}

# ksm LABEL DSN [CONCURRENCY]: ykksmd on DSN.
ksm() {
	local label=$1 dsn=$2 port pid
	port=$("$yb" freeport)
	start ykksmd "$work/$label.log" "$bin/ykksmd" --listen "127.0.0.1:$port" --db "$dsn"
	pid=$last_pid
	ready "$(url "$port")/healthz" "$work/$label.log"
	for c in ${3:-$concurrency}; do
		measure "$label" "$c" "$pid:ykksmd" "$yb" ksm --url "$(url "$port")" --keys "$keys"
	done
	stop "$pid"
}

# ksm_overhead VARIANT...: ykksmd on SQLite over plain HTTP (ksm-sqlite) and
# as each VARIANT, all running at once; for each repeat and concurrency, one
# run on each in turn, so a TLS or sealed run and its plaintext run see the
# same machine. Variants: tls (HTTPS), mtls (mutual TLS), sealed (AES keys
# sealed under a KEK, plain HTTP).
ksm_overhead() {
	local v label port rep c i names=(ksm-sqlite) pids_=() urls=() cargs=()
	port=$("$yb" freeport)
	start ykksmd "$work/ksm-sqlite.log" "$bin/ykksmd" --listen "127.0.0.1:$port" --db "$ksm_sqlite"
	pids_+=("$last_pid") urls+=("$(url "$port")") cargs+=("")
	ready "$(url "$port")/healthz" "$work/ksm-sqlite.log"
	for v in "$@"; do
		label=ksm-sqlite-$v
		port=$("$yb" freeport)
		case $v in
		tls)
			start ykksmd "$work/$label.log" "$bin/ykksmd" --listen "127.0.0.1:$port" --db "$ksm_sqlite" "${tls_server[@]}"
			urls+=("$(surl "$port")") cargs+=("${tls_client[*]}")
			;;
		mtls)
			start ykksmd "$work/$label.log" "$bin/ykksmd" --listen "127.0.0.1:$port" --db "$ksm_sqlite" "${tls_server[@]}" --tls-client-ca "$tlsdir/ca.crt"
			urls+=("$(surl "$port")") cargs+=("${mtls_client[*]}")
			;;
		sealed)
			start ykksmd "$work/$label.log" "$bin/ykksmd" --listen "127.0.0.1:$port" --db "sqlite:$work/ksm-sealed.db" --kek-file "$work/kek"
			urls+=("$(url "$port")") cargs+=("")
			;;
		esac
		names+=("$label") pids_+=("$last_pid")
		# shellcheck disable=SC2086 # cargs holds file names without spaces
		ready "${urls[-1]}/healthz" "$work/$label.log" ${cargs[-1]}
	done
	for rep in $(seq "$repeat"); do
		for c in $concurrency; do
			for i in "${!names[@]}"; do
				# shellcheck disable=SC2086
				measure "${names[$i]}" "$c" "${pids_[$i]}:ykksmd" "$yb" ksm --url "${urls[$i]}" --keys "$keys" ${cargs[$i]}
			done
		done
	done
	for i in "${!pids_[@]}"; do stop "${pids_[$i]}"; done
}

# Baseline and KSM runs, the baseline in the same run so the ratio is fair.
want baseline && baseline
ksm_variants=()
want ksm-sqlite-tls && ksm_variants+=(tls)
want ksm-sqlite-mtls && ksm_variants+=(mtls)
want ksm-sqlite-sealed && ksm_variants+=(sealed)
if [ "${#ksm_variants[@]}" -gt 0 ]; then
	ksm_overhead "${ksm_variants[@]}"
elif want ksm-sqlite; then
	ksm ksm-sqlite "$ksm_sqlite"
fi
if want ksm-mariadb && [ "$have_mysql" = 1 ]; then
	mkdb "ykbench_ksm_$$"
	"$yb" seed --db "$dsn" --keys "$keys" >&2
	ksm ksm-mariadb "$dsn"
fi
# The same at c=32 with net/http as the client, to show the generator's share.
if want std-client && [ "$client" != std ]; then
	run_client=std
	want baseline && baseline 32
	want ksm-sqlite && ksm ksm-sqlite "$ksm_sqlite" 32
	run_client=
fi

# --- ykksm-import of $import_keys keys -----------------------------------------
if want import; then
	export GNUPGHOME=$work/gnupg
	mkdir -m 700 "$GNUPGHOME"
	gpg --batch --quiet --passphrase '' --quick-generate-key 'ykbench KSM <ksm@ykbench.invalid>' ed25519 sign never 2>/dev/null
	fpr=$(gpg --batch --with-colons --list-keys '<ksm@ykbench.invalid>' | awk -F: '/^fpr/{print $10; exit}')
	gpg --batch --quiet --passphrase '' --quick-add-key "$fpr" cv25519 encr never 2>/dev/null
	gpg --batch --armor --export-secret-keys "$fpr" >"$work/ksm-secret.asc" 2>/dev/null
	timed "ykksm-gen-keys" "$import_keys" /dev/null "$work/import.csv" "$bin/ykksm-gen-keys" --urandom 1 "$import_keys"
	timed "gpg --sign --encrypt (ed25519/cv25519)" "$import_keys" "$work/import.csv" "$work/import.gpg" \
		gpg --batch --quiet --trust-model always --sign --encrypt -r "$fpr" -u "$fpr"
	imp=("$bin/ykksm-import" --keyring "$work/ksm-secret.asc")
	timed "ykksm-import --dry-run (OpenPGP and parsing only)" "$import_keys" "$work/import.gpg" /dev/null "${imp[@]}" --dry-run --database "sqlite:$work/dry.db"
	timed "ykksm-import into SQLite" "$import_keys" "$work/import.gpg" /dev/null "${imp[@]}" --database "sqlite:$work/import.db"
	if [ "$have_mysql" = 1 ]; then
		mkdb "ykbench_import_$$"
		timed "ykksm-import into MariaDB" "$import_keys" "$work/import.gpg" /dev/null "${imp[@]}" --database "$dsn"
	fi
	unset GNUPGHOME
fi

# --- YK-VAL: fresh OTPs (the write path) and replays ---------------------------
# vald LABEL VAL-DSN KSM-ARGS...: starts ykvald with a new API client; sets
# $val_url, $val_pid, $val_id, $val_key. With $val_tls set, ykvald serves
# HTTPS ("${tls_server[@]}") and ykbench trusts it ($val_cargs).
vald() {
	local label=$1 dsn=$2 port
	shift 2
	IFS=, read -r val_id val_key < <("$bin/ykval-gen-clients" --database "$dsn" 1)
	port=$("$yb" freeport)
	val_cargs=()
	if [ -n "${val_tls:-}" ]; then
		start ykvald "$work/$label.log" "$bin/ykvald" --listen "127.0.0.1:$port" --db "$dsn" "${tls_server[@]}" "$@"
		val_url=$(surl "$port")
		val_cargs=("${tls_client[@]}")
	else
		start ykvald "$work/$label.log" "$bin/ykvald" --listen "127.0.0.1:$port" --db "$dsn" "$@"
		val_url=$(url "$port")
	fi
	val_pid=$last_pid
	val_counter=1
	ready "$val_url/healthz" "$work/$label.log" "${val_cargs[@]}"
}

# val_save NAME / val_use NAME: keep and bring back the state vald and
# valruns work on, for two servers loaded in turn.
declare -A v_url v_pid v_id v_key v_counter v_cargs
val_save() { v_url[$1]=$val_url v_pid[$1]=$val_pid v_id[$1]=$val_id v_key[$1]=$val_key v_counter[$1]=$val_counter v_cargs[$1]="${val_cargs[*]}"; }
# shellcheck disable=SC2206 # v_cargs holds file names without spaces
val_use() { val_url=${v_url[$1]} val_pid=${v_pid[$1]} val_id=${v_id[$1]} val_key=${v_key[$1]} val_counter=${v_counter[$1]} val_cargs=(${v_cargs[$1]}); }

# valruns LABEL "PID:NAME ..." [--replay --max-keys N]: the VAL load runs.
# On a new server every key is first primed (one OTP each, outside any
# measurement) so the runs measure steady state, not first-time enrolment;
# each run goes on from the session counter the one before left
# ($val_counter). A replay run primes its own keys again, inside its
# measurement window (counted in prime_requests).
valruns() {
	local label=$1 procs=$2 next
	shift 2
	if [ "$val_counter" = 1 ]; then
		say "$label: priming $nkeys keys (unmeasured)"
		last_json=$("$yb" val --url "$val_url" --client-id "$val_id" --api-key "$val_key" --keys "$keys" \
			-c 8 --client "$client" --prime-only "${val_cargs[@]}" | grep '^{') || say "$label: priming failed"
		next=$(next_counter)
		val_counter=${next:-1000}
	fi
	for c in ${val_conc:-$concurrency}; do
		measure "$label" "$c" "$procs" "$yb" val --url "$val_url" --client-id "$val_id" --api-key "$val_key" \
			--keys "$keys" --counter "$val_counter" "${val_cargs[@]}" "$@"
		next=$(next_counter)
		val_counter=${next:-$((val_counter + 1000))} # a failed run reports nothing: jump well ahead
	done
}

if [ "$have_vald" = 1 ]; then
	if want val-sqlite-tls; then
		# ykvald over HTTPS and over HTTP (each its own VAL database, one KSM
		# database), loaded in turn: per repeat and concurrency, a plaintext
		# run, then a TLS run.
		val_tls=1 vald val-sqlite-embedded-tls "sqlite:$work/val-tls.db" --ksm-db "$ksm_sqlite"
		val_save tls
		vald val-sqlite-embedded "sqlite:$work/val.db" --ksm-db "$ksm_sqlite"
		val_save plain
		for rep in $(seq "$repeat"); do
			for c in $concurrency; do
				val_use plain
				val_conc=$c valruns val-sqlite-embedded "$val_pid:ykvald"
				val_save plain
				val_use tls
				val_conc=$c valruns val-sqlite-embedded-tls "$val_pid:ykvald"
				val_save tls
			done
		done
		stop "$val_pid"
		val_use plain
		want val-replay && valruns val-replay-sqlite-embedded "$val_pid:ykvald" --replay --max-keys "$replay_keys"
		stop "$val_pid"
	elif want val-sqlite || want val-replay; then
		vald val-sqlite-embedded "sqlite:$work/val.db" --ksm-db "$ksm_sqlite"
		want val-sqlite && valruns val-sqlite-embedded "$val_pid:ykvald"
		want val-replay && valruns val-replay-sqlite-embedded "$val_pid:ykvald" --replay --max-keys "$replay_keys"
		stop "$val_pid"
	fi
	if want val-mariadb && [ "$have_mysql" = 1 ]; then
		mkdb "ykbench_valksm_$$"
		kdsn=$dsn
		"$yb" seed --db "$kdsn" --keys "$keys" >&2
		kport=$("$yb" freeport)
		start ykksmd "$work/val-ksm.log" "$bin/ykksmd" --listen "127.0.0.1:$kport" --db "$kdsn"
		ksm_pid=$last_pid
		ready "$(url "$kport")/healthz" "$work/val-ksm.log"
		mkdb "ykbench_val_$$"
		vald val-mariadb-httpksm "$dsn" --ksm-url "$(url "$kport")/wsapi/decrypt"
		valruns val-mariadb-httpksm "$val_pid:ykvald $ksm_pid:ykksmd"
		stop "$val_pid"
		stop "$ksm_pid"
	fi
fi

# --- report ------------------------------------------------------------------
"$yb" report "$results" >"$work/report.md"
cat "$work/report.md"
if [ "$update_docs" = 1 ] && [ -f "$docs" ] && grep -q '^<!-- BEGIN bench results' "$docs"; then
	awk -v md="$work/report.md" '
		/^<!-- BEGIN bench results/ { print; while ((getline l < md) > 0) print l; skip = 1; next }
		/^<!-- END bench results/ { skip = 0 }
		!skip' "$docs" >"$work/BENCHMARKS.md"
	cp "$work/BENCHMARKS.md" "$docs"
	say "updated the results section of docs/BENCHMARKS.md"
fi
