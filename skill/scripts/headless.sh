#!/usr/bin/env bash
# Room creator only: say whether a human watches live (off) or not (on). The partner is told.
USAGE='headless.sh [--session NAME] on|off'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
case "${ARGS[*]}" in on) value=true ;; off) value=false ;; *) usage_error "on or off" ;; esac
require_session
load_settings
api POST /room-rule/headless -H 'content-type: application/json' --data-binary "{\"headless\":$value}"
ok_or_fail
echo "HEADLESS: $value"
