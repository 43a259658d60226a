#!/bin/sh
# Development certificate authority for MQTT over TLS (issue 16). Creates, once, in <dir>:
#   ca.key (0600), ca.crt        a self-signed CA (EC P-256, 10 years)
#   server.key (0600), server.crt the broker's certificate signed by it, for localhost,
#                                 127.0.0.1, ::1 and the names in DEVCA_SERVER_NAMES
#                                 (space-separated DNS names or IP addresses), 825 days
# Files that already exist are kept, so `make run` reuses them across starts; delete <dir>
# to start over. <dir> is made 0700. Not for production: there the broker's certificate
# comes from your own CA or a public one (MQTT_TLS_CERT/MQTT_TLS_KEY).
# Device certificates (CN = serial, subjectAltName URI urn:coldchain:device:<id>, the devices
# row they belong to) come from `ccctl device cert SERIAL`, signed by this CA.
#
# usage: sh tools/devca.sh <dir>
set -eu

die() {
    echo "devca.sh: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: sh tools/devca.sh <dir>"
dir=$1
command -v openssl >/dev/null || die "openssl not found (package openssl)"
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

CA_DAYS=3650     # the development CA's validity
SERVER_DAYS=825  # a server certificate's validity (the longest clients commonly accept)

rand_serial() {
    printf '0x%s\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
}

if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
    rm -f "$dir/server.key" "$dir/server.crt" # signed by the CA being replaced
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$CA_DAYS" -set_serial "$(rand_serial)" \
        -subj "/O=coldchain/CN=coldchain development CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || die "cannot create the CA"
fi

if [ ! -s "$dir/server.key" ] || [ ! -s "$dir/server.crt" ]; then
    san="DNS:localhost,IP:127.0.0.1,IP:::1"
    for n in ${DEVCA_SERVER_NAMES:-}; do
        case $n in
        *[!0-9.]*) case $n in *:*) san="$san,IP:$n" ;; *) san="$san,DNS:$n" ;; esac ;;
        *) san="$san,IP:$n" ;;
        esac
    done
    ext=$(mktemp "$dir/.ext.XXXXXX")
    csr=$(mktemp "$dir/.csr.XXXXXX")
    trap 'rm -f "$ext" "$csr"' EXIT
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$san" >"$ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$dir/server.key" -out "$csr" -subj "/O=coldchain/CN=localhost" 2>/dev/null ||
        die "cannot create the server key"
    openssl x509 -req -in "$csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "$(rand_serial)" -days "$SERVER_DAYS" -extfile "$ext" \
        -out "$dir/server.crt" 2>/dev/null || die "cannot sign the server certificate"
fi
chmod 600 "$dir/ca.key" "$dir/server.key"
chmod 644 "$dir/ca.crt" "$dir/server.crt"
echo "$dir"
