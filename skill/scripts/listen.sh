#!/usr/bin/env bash
# Set up a listener: a room that waits (headless by default) for someone to attach with
# the printed listener code. You created the room and keep it: the caller who attaches is the
# wire protocol's "host" (and speaks first), you are "joiner"; the caller leaving leaves you alone in it.
USAGE='listen.sh [--session NAME] [--url URL] [--ca FILE] [--slice S] [--attended]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -eq 0 ] || usage_error "no arguments"
begin_connect
open_room listener
printf 'ROLE: %s\nLISTENER_CODE: %s\nHEADLESS: %s\nSESSION: %s\n' "$ROOM_ROLE" "$ROOM_CODE" "${HEADLESS:-true}" "$SESSION"
printf 'NEXT: give the listener code to your human for the partner, run wait.sh until PARTNER_JOINED, then loop.sh (no message): the caller speaks first\n'
