#!/usr/bin/env bash
# Runs the whole stack on this machine with SQLite, no database server needed:
# a KSM (ykksmd, 127.0.0.1:8002) and a validation server (ykvald,
# 127.0.0.1:8080, decrypting in-process from the same KSM database).
#
# On first run it provisions a demo the way a real site would: three YubiKey
# AES keys made by ykksm-gen-keys, signed and encrypted with a throwaway
# OpenPGP key, imported by ykksm-import; and one API client made by
# ykval-gen-clients. State lives in ./var (override with YKSTACK_STATE).
set -euo pipefail
cd "$(dirname "$0")/.."

state=${YKSTACK_STATE:-$PWD/var}
ksm_listen=${YKKSM_LISTEN:-127.0.0.1:8002}
val_listen=${YKVAL_LISTEN:-127.0.0.1:8080}
mkdir -p "$state"
chmod 700 "$state"

if ! command -v gpg >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "run: installing gnupg" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnupg >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnupg >/dev/null; }
	else
		echo "run: gpg is needed for the demo key batch: apt-get install gnupg" >&2
		exit 1
	fi
fi

echo "run: building into ./bin" >&2
go build -o bin/ ./cmd/...

ksm_db="sqlite:$state/ykksm.db"
val_db="sqlite:$state/ykval.db"

if [ ! -s "$state/demo-client.csv" ]; then
	echo "run: provisioning demo keys and an API client in $state" >&2
	export GNUPGHOME="$state/gnupg"
	rm -rf "$GNUPGHOME" && mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
	gpg --batch --quiet --passphrase '' --quick-generate-key 'ykstack demo KSM <ksm@ykstack.invalid>' ed25519 sign never 2>/dev/null
	fpr=$(gpg --batch --with-colons --list-keys '<ksm@ykstack.invalid>' | awk -F: '/^fpr/{print $10; exit}')
	gpg --batch --quiet --passphrase '' --quick-add-key "$fpr" cv25519 encr never 2>/dev/null
	gpg --batch --armor --export-secret-keys "$fpr" >"$state/ksm-secret.asc"
	bin/ykksm-gen-keys --urandom 1 3 >"$state/demo-keys.csv"
	gpg --batch --quiet --trust-model always --armor --sign --encrypt -r "$fpr" -u "$fpr" <"$state/demo-keys.csv" |
		bin/ykksm-import --keyring "$state/ksm-secret.asc" --database "$ksm_db"
	bin/ykval-gen-clients --urandom --notes="demo client" --database="$val_db" 1 >"$state/demo-client.csv"
fi

IFS=, read -r client_id client_key <"$state/demo-client.csv"
cat <<MSG

ykstack is starting (Ctrl-C stops it):
  KSM  http://$ksm_listen/wsapi/decrypt       database $ksm_db
  VAL  http://$val_listen/wsapi/2.0/verify    database $val_db (KSM embedded)

Demo YubiKeys (serial,public id,...) are in $state/demo-keys.csv; API client $client_id, key $client_key.
Try it from another terminal, as a YubiKey touch would (ykgenerate takes the
OTP's counters from the clock: one new OTP per second, like touches):
  OTP=\$(bin/ykgenerate --db $ksm_db --public-id cccccccccccb)
  curl "http://$ksm_listen/wsapi/decrypt?otp=\$OTP"
  curl "http://$val_listen/wsapi/2.0/verify?id=$client_id&nonce=0123456789abcdef&otp=\$OTP"   # OK; again: REPLAYED_REQUEST (same nonce), with another nonce: REPLAYED_OTP
  sleep 1; bin/ykclient --url http://$val_listen/wsapi/2.0/verify --apikey $client_key $client_id "\$(bin/ykgenerate --db $ksm_db --public-id cccccccccccb)"

MSG

bin/ykksmd --listen "$ksm_listen" --db "$ksm_db" &
ksm_pid=$!
trap 'kill $ksm_pid 2>/dev/null; wait $ksm_pid 2>/dev/null' EXIT INT TERM
bin/ykvald --listen "$val_listen" --db "$val_db" --ksm-db "$ksm_db"
