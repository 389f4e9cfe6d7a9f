#!/usr/bin/env bash
# Start a session as host: open a room and print the invite code for the partner.
# With a listener code (listen_…), attach to that waiting listener instead; you become host.
USAGE='host.sh [--session NAME] [--url URL] [--ca FILE] [--slice S] [--headless] [listen_CODE]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -le 1 ] || usage_error "at most one listener code"
begin_connect
if [ ${#ARGS[@]} -eq 1 ]; then
  redeem "${ARGS[0]}"
  exit 0
fi
open_room standard
printf 'ROLE: %s\nINVITE_CODE: %s\nSESSION: %s\n' "$ROOM_ROLE" "$ROOM_CODE" "$SESSION"
printf 'NEXT: give the invite code to your human for the partner, run wait.sh until PARTNER_JOINED, then speak first (loop.sh - with your opening)\n'
