#!/bin/sh
# Writes a runnable mosquitto configuration for coldchain into <out_dir>:
#   mosquitto.conf (from broker-config/mosquitto.conf.in), passwd (mode 0600, one account made
#   with mosquitto_passwd from <username>/<password>) and acl (from broker-config/acl).
# The persistence directory is <out_dir>/data. MQTT_BIND (default 127.0.0.1) sets the address.
# The password is never written anywhere but the hashed passwd file.
#
# usage: sh tools/broker_conf.sh <out_dir> <mqtt_port> <db_path> <plugin_so> <username> <password>
set -eu

die() {
    echo "broker_conf.sh: $*" >&2
    exit 1
}

[ $# -eq 6 ] || die "usage: sh tools/broker_conf.sh <out_dir> <mqtt_port> <db_path> <plugin_so> <username> <password>"
out_dir=$1
port=$2
db=$3
plugin=$4
username=$5
password=$6
bind=${MQTT_BIND:-127.0.0.1}
src_dir=$(cd "$(dirname "$0")/../broker-config" && pwd)

case $port in
'' | *[!0-9]*) die "port must be a number: $port" ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "port out of range: $port"
fi
case $username in
'' | *:* | *' '* | *'	'*) die "username must be non-empty, without ':' or blanks" ;;
esac
[ -n "$password" ] || die "password must not be empty"
[ -f "$plugin" ] || die "plugin not found: $plugin (run: make build/coldchain_auth.so)"
[ -f "$db" ] || echo "broker_conf.sh: warning: database $db does not exist yet;" \
    "the plugin needs it (migrated) when mosquitto starts" >&2
command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd not found (package mosquitto)"

# Absolute paths: mosquitto resolves relative ones against its own working directory.
abspath() {
    printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")"
}
mkdir -p "$out_dir/data"
out_dir=$(cd "$out_dir" && pwd)
db=$(abspath "$db")
plugin=$(abspath "$plugin")
user=$(id -un)

for v in "$out_dir" "$db" "$plugin"; do
    case $v in
    *'
'* | *' '*) die "paths must not contain blanks or newlines: $v" ;;
    esac
done

# sed replacement text: escape \, & and the | delimiter.
esc() {
    printf '%s\n' "$1" | sed -e 's/[\\&|]/\\&/g'
}

sed -e "s|@MQTT_PORT@|$(esc "$port")|g" \
    -e "s|@MQTT_BIND@|$(esc "$bind")|g" \
    -e "s|@DATA_DIR@|$(esc "$out_dir/data")|g" \
    -e "s|@PLUGIN@|$(esc "$plugin")|g" \
    -e "s|@DB@|$(esc "$db")|g" \
    -e "s|@PASSWD@|$(esc "$out_dir/passwd")|g" \
    -e "s|@ACL@|$(esc "$out_dir/acl")|g" \
    -e "s|@USER@|$(esc "$user")|g" \
    "$src_dir/mosquitto.conf.in" >"$out_dir/mosquitto.conf.tmp"
mv "$out_dir/mosquitto.conf.tmp" "$out_dir/mosquitto.conf"

sed -e "s|@MQTT_USERNAME@|$(esc "$username")|g" "$src_dir/acl" >"$out_dir/acl.tmp"
mv "$out_dir/acl.tmp" "$out_dir/acl"

# mosquitto_passwd -c refuses to overwrite some files and keeps the mode of others: start clean.
rm -f "$out_dir/passwd"
(umask 077 && mosquitto_passwd -b -c "$out_dir/passwd" "$username" "$password") >/dev/null ||
    die "mosquitto_passwd failed"
chmod 600 "$out_dir/passwd"

if grep -n '@[A-Z_]*@' "$out_dir/mosquitto.conf" "$out_dir/acl" >&2; then
    die "placeholder left unfilled"
fi
echo "$out_dir/mosquitto.conf"
