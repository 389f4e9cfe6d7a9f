#!/usr/bin/env bash
# Can this machine reach the broker (URL, TLS, CA)? Also says whether the session is connected.
USAGE='check.sh [--session NAME] [--url URL] [--ca FILE]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -eq 0 ] || usage_error "no arguments"
ensure_state_dir
load_settings
# The health check needs no token: never send one to a URL the session did not connect to.
AUTH_FILE=$STATE_DIR/.none
api GET /health
ok_or_fail
printf 'BROKER_OK url=%s\n' "$URL"
if [ -f "$STATE_DIR/auth" ]; then echo "SESSION: $SESSION connected role=$(state_get role)"; else echo "SESSION: $SESSION not connected"; fi
