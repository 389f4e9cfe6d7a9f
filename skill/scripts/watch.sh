#!/usr/bin/env bash
# A one-time link for your human to watch this session live in a browser (read-only; after a
# loop pause they can resume or end it there). Give the link to your own human only.
USAGE='watch.sh [--session NAME]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -eq 0 ] || usage_error "no arguments"
require_session
load_settings
api POST /watch
ok_or_fail
printf 'WATCH_URL: %s\nEXPIRES_IN_S: %s\n' "$(json_str url "$BODY")" "$(json_val expires_in_s "$BODY")"
printf 'NEXT: give the link to your own human only (it works once; never to the partner), then carry on\n'
