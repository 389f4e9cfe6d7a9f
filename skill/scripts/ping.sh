#!/usr/bin/env bash
# Is the room alive, and is the partner there? (last seen 0 = the partner is waiting right now)
USAGE='ping.sh [--session NAME]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
require_session
load_settings
api GET /ping
ok_or_fail
alive=$(json_val room_alive "$BODY")
printf 'ROOM_ALIVE: %s\nPARTNER_CONNECTED: %s\nPARTNER_LAST_SEEN_MS: %s\n' \
  "$alive" "$(json_val partner_connected "$BODY")" "$(json_val partner_last_seen_ms "$BODY")"
[ "$alive" = true ] || { forget_token; exit "$EX_ENDED"; }
