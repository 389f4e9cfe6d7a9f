#!/bin/sh
# Caddy is healthy when it serves the site over TLS for its own name on its HTTPS port, not
# merely when its process is up: a name it has no certificate for fails the handshake
# ("tlsv1 alert internal error"), and so fails this check.
set -eu
name=${PARLEY_DOMAIN:-localhost}
port=${HTTPS_PUBLIC_PORT:-443}
host=$name
case $name in *:*) host="[$name]" ;; esac
url="https://$host:$port/health"
ca=/data/caddy/pki/authorities/local/root.crt
if command -v curl >/dev/null 2>&1; then
  # The name resolves to this container; the certificate is verified against the local CA (if
  # Caddy made one) and the system store.
  set -- -fsS -o /dev/null --max-time 8 --resolve "$name:$port:127.0.0.1" --capath /etc/ssl/certs
  [ -f "$ca" ] && set -- "$@" --cacert "$ca"
  exec curl "$@" "$url"
fi
# The official image (Alpine) has busybox wget, which has no --resolve: compose maps the name to
# 127.0.0.1 in this container (extra_hosts). Busybox wget cannot be given a CA file, so the check
# proves the handshake for the name, not the chain (the chain is what clients check).
exec wget -q -O /dev/null -T 8 --no-check-certificate "$url"
