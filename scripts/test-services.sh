#!/usr/bin/env bash
# Makes sure the services and programs the test suite needs are here, on a
# developer's machine or a fresh Debian: gpg, gcc, libpam, a MariaDB
# server, and galera-4 and rsync for the Galera cluster tests. Installs
# missing Debian packages (as root) and, when no MariaDB answers on
# 127.0.0.1:3306, starts a private throwaway one.
#
# Source it (". scripts/test-services.sh") to get YKSTACK_TEST_MYSQL exported;
# run it to see what it would use.
set -u

log() { printf 'test-services: %s\n' "$*" >&2; }

need_pkgs=()
command -v gpg >/dev/null 2>&1 || need_pkgs+=(gnupg)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
[ -f /usr/include/security/pam_modules.h ] || need_pkgs+=(libpam0g-dev)
command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || need_pkgs+=(mariadb-server mariadb-client)
# The Galera tests (val/galeratest) start a 3-node cluster: galera-4, and rsync for state transfers.
[ -f /usr/lib/galera/libgalera_smm.so ] || [ -f /usr/lib64/galera-4/libgalera_smm.so ] || need_pkgs+=(galera-4)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server) # PAM: real sshd logins
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need_pkgs+=(slapd ldap-utils) # PAM: LDAP mapping
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)           # contrib: unit verification
command -v systemd-nspawn >/dev/null 2>&1 || need_pkgs+=(systemd-container)  # contrib: units booted for real
command -v dbus-daemon >/dev/null 2>&1 || need_pkgs+=(dbus)                  # contrib: systemd-run in the booted container

# promtool (contrib: alert rules) ships in Debian's "prometheus"; skip its Recommends.
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	log "installing prometheus (for promtool)"
	apt-get update -qq >/dev/null 2>&1 || true
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
		log "apt-get install prometheus failed"
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing ${need_pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null 2>&1 || true
		apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1 || log "apt-get install failed for ${need_pkgs[*]}"
	else
		log "missing ${need_pkgs[*]}; install them (apt-get install ${need_pkgs[*]})"
	fi
fi

mysql_answers() { # $1 = go-sql-driver style host:port
	local host=${1%:*} port=${1#*:}
	if command -v mariadb >/dev/null 2>&1; then
		mariadb --no-defaults -h "$host" -P "$port" -uroot -e 'SELECT 1' >/dev/null 2>&1
	else
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
	fi
}

if [ -n "${YKSTACK_TEST_MYSQL:-}" ]; then
	log "using YKSTACK_TEST_MYSQL from the environment"
elif mysql_answers 127.0.0.1:3306; then
	export YKSTACK_TEST_MYSQL='root@tcp(127.0.0.1:3306)/'
	log "using the MariaDB server on 127.0.0.1:3306"
else
	state=${TMPDIR:-/tmp}/ykstack-mariadb
	port=33306
	if mysql_answers 127.0.0.1:$port; then
		log "reusing the private MariaDB on 127.0.0.1:$port"
	else
		mariadbd=$(command -v mariadbd || command -v mysqld || true)
		installdb=$(command -v mariadb-install-db || command -v mysql_install_db || true)
		if [ -z "$mariadbd" ] || [ -z "$installdb" ]; then
			log "no MariaDB server binary; MySQL tests will be skipped (or fail with CI=true)"
		else
			rm -rf "$state" && mkdir -p "$state"
			user_opt=()
			[ "$(id -u)" = 0 ] && user_opt=(--user=root)
			"$installdb" --no-defaults "${user_opt[@]}" --datadir="$state/data" \
				--auth-root-authentication-method=normal --skip-test-db >"$state/install.log" 2>&1 ||
				log "mariadb-install-db failed: see $state/install.log"
			"$mariadbd" --no-defaults "${user_opt[@]}" --datadir="$state/data" --bind-address=127.0.0.1 \
				--port=$port --socket="$state/mysqld.sock" --pid-file="$state/mysqld.pid" \
				--skip-name-resolve --innodb-buffer-pool-size=256M --max-connections=500 \
				--log-error="$state/err.log" >/dev/null 2>&1 &
			for _ in $(seq 1 60); do
				mysql_answers 127.0.0.1:$port && break
				sleep 0.5
			done
			mysql_answers 127.0.0.1:$port && log "started a private MariaDB on 127.0.0.1:$port ($state)" ||
				log "private MariaDB did not start: see $state/err.log"
		fi
	fi
	export YKSTACK_TEST_MYSQL="root@tcp(127.0.0.1:$port)/"
fi
