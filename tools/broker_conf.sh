#!/bin/sh
# Writes a runnable mosquitto configuration for coldchain into <out_dir>:
#   mosquitto.conf (from broker-config/mosquitto.conf.in), passwd (mode 0600, one account made
#   with mosquitto_passwd from <username>/<password>) and acl (from broker-config/acl).
# The persistence directory is <out_dir>/data. MQTT_BIND (default 127.0.0.1) sets the address.
#
# Listeners (broker-config/README.md, "TLS"):
#   plain     <mqtt_port> on MQTT_BIND; 0 = off. COLDCHAIN_ENV=production: loopback only.
#   TLS       MQTT_TLS_PORT (default 8883) on MQTT_TLS_BIND (default MQTT_BIND; in
#             production 0.0.0.0), when
#             MQTT_TLS_CERT and MQTT_TLS_KEY name the broker's certificate and key; 0 = off.
#   device    MQTT_TLS_CERT_PORT (default 8884), when MQTT_TLS_CAFILE names the CA that signs
#   certs     device certificates (require_certificate); 0 = off.
#
# The operator password never reaches a command line or a child's environment (issue 12 item
# 10: argv is readable by every user through ps and /proc): it comes from MQTT_PASSWORD, which
# this script unsets before it runs anything, or from one line on stdin when the password
# argument is "-". It is written as "user:password" to a 0600 file in a 0700 directory of its
# own, hashed there in place by `mosquitto_passwd -U`, and only the hashed file is kept.
# A literal password argument still works for old callers, but is visible in ps.
#
# usage: MQTT_PASSWORD=... sh tools/broker_conf.sh <out_dir> <mqtt_port> <db_path> <plugin_so> <username>
#        sh tools/broker_conf.sh <out_dir> <mqtt_port> <db_path> <plugin_so> <username> - <<<password
set -eu

# First of all, so that no child below inherits it.
password=${MQTT_PASSWORD:-}
unset MQTT_PASSWORD

die() {
    echo "broker_conf.sh: $*" >&2
    exit 1
}

[ $# -eq 5 ] || [ $# -eq 6 ] ||
    die "usage: MQTT_PASSWORD=... sh tools/broker_conf.sh <out_dir> <mqtt_port> <db_path> <plugin_so> <username> [-]"
out_dir=$1
port=$2
db=$3
plugin=$4
username=$5
if [ $# -eq 6 ]; then
    # A password in argv would be readable by every user (ps, /proc): only "-" (stdin).
    [ "$6" = - ] || die "the password comes from MQTT_PASSWORD or stdin ('-'), never argv"
    IFS= read -r password || [ -n "$password" ] || die "no password on stdin"
fi
# .env.example's placeholders ("change-me...") are public: in production the operator
# account would be anyone's (common/base/cc_config.c refuses them in the daemons too).
if [ "${COLDCHAIN_ENV:-}" = production ]; then
    case $(printf '%s' "$password" | tr '[:upper:]' '[:lower:]') in
    change-me*) die "MQTT_PASSWORD: still the placeholder of .env.example; set a random value (openssl rand -hex 32)" ;;
    esac
fi
bind=${MQTT_BIND:-127.0.0.1}
src_dir=$(cd "$(dirname "$0")/../broker-config" && pwd)

check_port() { # name value: 0 (off) or 1..65535
    case $2 in
    '' | *[!0-9]*) die "$1 must be a number: $2" ;;
    esac
    [ "$2" -le 65535 ] || die "$1 out of range: $2"
}
check_port "port" "$port"
tls_port=${MQTT_TLS_PORT:-8883}
cert_port=${MQTT_TLS_CERT_PORT:-8884}
check_port MQTT_TLS_PORT "$tls_port"
check_port MQTT_TLS_CERT_PORT "$cert_port"
# Devices reach the TLS listeners over the network: in production they listen on every
# address unless MQTT_TLS_BIND says otherwise; in development, where MQTT_BIND says.
if [ "${COLDCHAIN_ENV:-}" = production ]; then
    tls_bind=${MQTT_TLS_BIND:-0.0.0.0}
else
    tls_bind=${MQTT_TLS_BIND:-$bind}
fi
tls_cert=${MQTT_TLS_CERT:-}
tls_key=${MQTT_TLS_KEY:-}
tls_ca=${MQTT_TLS_CAFILE:-}
[ -n "$tls_cert" ] || [ -z "$tls_key" ] || die "MQTT_TLS_KEY is set but MQTT_TLS_CERT is not"
[ -n "$tls_key" ] || [ -z "$tls_cert" ] || die "MQTT_TLS_CERT is set but MQTT_TLS_KEY is not"
tls=off
if [ -n "$tls_cert" ] && [ "$tls_port" -ne 0 ]; then
    tls=on
    for f in "$tls_cert" "$tls_key"; do
        [ -r "$f" ] || die "cannot read $f"
    done
fi
tlscert=off
if [ -n "$tls_ca" ] && [ "$cert_port" -ne 0 ]; then
    [ -n "$tls_cert" ] || die "MQTT_TLS_CAFILE needs MQTT_TLS_CERT and MQTT_TLS_KEY"
    [ -r "$tls_ca" ] || die "cannot read $tls_ca"
    tlscert=on
fi
plain=on
[ "$port" -ne 0 ] || plain=off
[ $plain = on ] || [ $tls = on ] || die "no listener: plain port 0 and no TLS listener"
if [ "${COLDCHAIN_ENV:-}" = production ]; then
    # Devices reach the broker over the internet only through TLS; the plain listener is for
    # the daemons on this host.
    if [ $plain = on ]; then
        case $bind in
        127.* | ::1 | localhost) ;;
        *) die "COLDCHAIN_ENV=production: the plain listener must bind to loopback (MQTT_BIND=$bind) or be off (port 0)" ;;
        esac
    fi
    [ $tls = on ] || echo "broker_conf.sh: warning: production without a TLS listener" \
        "(set MQTT_TLS_CERT and MQTT_TLS_KEY): devices can only reach loopback" >&2
fi
# The bound on every session's queue (ingestd's above all; README "Back-pressure"), in bytes
# of payload: MQTT_QUEUE_BYTES, by default an hour of INGEST_EXPECTED_RATE readings/s
# (default 1000) of up to 300 bytes each.
rate=${INGEST_EXPECTED_RATE:-1000}
case $rate in
'' | *[!0-9]*) die "INGEST_EXPECTED_RATE must be a positive number: $rate" ;;
esac
[ "$rate" -ge 1 ] && [ "$rate" -le 1000000 ] || die "INGEST_EXPECTED_RATE out of range (1..1000000): $rate"
queue_bytes=${MQTT_QUEUE_BYTES:-$((rate * 3600 * 300))}
case $queue_bytes in
'' | *[!0-9]*) die "MQTT_QUEUE_BYTES must be a positive number: $queue_bytes" ;;
esac
[ "$queue_bytes" -gt 0 ] || die "MQTT_QUEUE_BYTES must be a positive number: $queue_bytes"
case $username in
'' | *:* | *' '* | *'	'*) die "username must be non-empty, without ':' or blanks" ;;
esac
[ -n "$password" ] || die "password must not be empty"
[ -f "$plugin" ] || die "plugin not found: $plugin (run: make build/coldchain_auth.so)"
# <db_path> may be a PostgreSQL URL (postgresql://... or postgres://...): the plugin then
# reads devices from that database; it goes into mosquitto.conf (then mode 0600) as given.
case $db in
postgresql://* | postgres://*) db_is_url=1 ;;
*) db_is_url=0 ;;
esac
[ "$db_is_url" = 1 ] || [ -f "$db" ] || echo "broker_conf.sh: warning: database $db does not exist yet;" \
    "the plugin needs it (migrated) when mosquitto starts" >&2
command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd not found (package mosquitto)"

# Absolute paths: mosquitto resolves relative ones against its own working directory.
abspath() {
    printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")"
}
mkdir -p "$out_dir/data"
out_dir=$(cd "$out_dir" && pwd)
[ "$db_is_url" = 1 ] || db=$(abspath "$db")
plugin=$(abspath "$plugin")
user=$(id -un)
[ -z "$tls_cert" ] || tls_cert=$(abspath "$tls_cert")
[ -z "$tls_key" ] || tls_key=$(abspath "$tls_key")
[ -z "$tls_ca" ] || tls_ca=$(abspath "$tls_ca")

for v in "$out_dir" "$db" "$plugin" "$tls_cert" "$tls_key" "$tls_ca"; do
    case $v in
    *'
'* | *' '*) die "paths must not contain blanks or newlines: $v" ;;
    esac
done

# sed replacement text: escape \, & and the | delimiter.
esc() {
    printf '%s\n' "$1" | sed -e 's/[\\&|]/\\&/g'
}

# Keep ("on": untag) or drop ("off") the lines of an optional listener.
tag() { # tag on|off
    if [ "$2" = on ]; then echo "s|^#$1 ||"; else echo "/^#$1 /d"; fi
}

# A database URL may carry a password: then mosquitto.conf is written 0600 from the start.
[ "$db_is_url" = 0 ] || umask 077
sed -e "$(tag plain $plain)" -e "$(tag tls $tls)" -e "$(tag tlscert $tlscert)" \
    -e "s|@MQTT_PORT@|$(esc "$port")|g" \
    -e "s|@MQTT_TLS_PORT@|$(esc "$tls_port")|g" \
    -e "s|@MQTT_TLS_CERT_PORT@|$(esc "$cert_port")|g" \
    -e "s|@MQTT_TLS_BIND@|$(esc "$tls_bind")|g" \
    -e "s|@MQTT_TLS_CERT@|$(esc "$tls_cert")|g" \
    -e "s|@MQTT_TLS_KEY@|$(esc "$tls_key")|g" \
    -e "s|@MQTT_TLS_CAFILE@|$(esc "$tls_ca")|g" \
    -e "s|@MQTT_BIND@|$(esc "$bind")|g" \
    -e "s|@DATA_DIR@|$(esc "$out_dir/data")|g" \
    -e "s|@PLUGIN@|$(esc "$plugin")|g" \
    -e "s|@DB@|$(esc "$db")|g" \
    -e "s|@PASSWD@|$(esc "$out_dir/passwd")|g" \
    -e "s|@ACL@|$(esc "$out_dir/acl")|g" \
    -e "s|@USER@|$(esc "$user")|g" \
    -e "s|@QUEUE_BYTES@|$queue_bytes|g" \
    "$src_dir/mosquitto.conf.in" >"$out_dir/mosquitto.conf.tmp"
mv "$out_dir/mosquitto.conf.tmp" "$out_dir/mosquitto.conf"

sed -e "s|@MQTT_USERNAME@|$(esc "$username")|g" "$src_dir/acl" >"$out_dir/acl.tmp"
mv "$out_dir/acl.tmp" "$out_dir/acl"

case $password in
*'
'*) die "password must be one line" ;;
esac
# printf is a shell builtin: the password goes straight into the file, through no exec.
# mktemp -d makes the directory 0700, umask 077 the file 0600.
plain_dir=$(mktemp -d "$out_dir/.passwd.XXXXXX")
trap 'rm -rf "$plain_dir"' EXIT
(umask 077 && printf '%s:%s\n' "$username" "$password" >"$plain_dir/passwd")
mosquitto_passwd -U "$plain_dir/passwd" >/dev/null || die "mosquitto_passwd -U failed"
chmod 600 "$plain_dir/passwd"
mv "$plain_dir/passwd" "$out_dir/passwd"
password=

if grep -n '@[A-Z_]*@' "$out_dir/mosquitto.conf" "$out_dir/acl" >&2; then
    die "placeholder left unfilled"
fi
echo "$out_dir/mosquitto.conf"
