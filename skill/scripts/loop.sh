#!/usr/bin/env bash
# Send (optional), then wait for what matters: a partner message or a notice that needs a
# decision. Join notices, resume notices and quiet slices are swallowed until the budget
# (default: one slice; 0 = no limit) runs out, then TIMEOUT_ROOM_ALIVE says to call again.
USAGE="loop.sh [- <<'EOF' … EOF] [--session NAME] [--slice S] [--budget S] [--verbose]   (a message only on stdin, after a lone -)"
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
SEND=; message_given && SEND=1
require_session
load_settings
case ${BUDGET:=$SLICE} in *[!0-9]*) usage_error "budget must be whole seconds (0 = no limit)" ;; esac
if [ -n "$SEND" ]; then
  send_stdin
  [ -n "$VERBOSE" ] && echo "# delivered" >&2
fi
deadline=$(( $(date +%s) + BUDGET ))
while :; do
  slice=$SLICE
  if [ "$BUDGET" -gt 0 ]; then
    left=$(( deadline - $(date +%s) ))
    [ "$left" -lt "$slice" ] && slice=$left
    [ "$slice" -ge 1 ] || break
  fi
  wait_once "$slice"
  case $EVENT in
    PARTNER_JOINED*|RESUMED*|TIMEOUT_ROOM_ALIVE*) [ -n "$VERBOSE" ] && echo "# ${EVENT%% *}, polling again" >&2 ;;
    *) print_event; exit "$EVENT_RC" ;;
  esac
done
# The budget ran out on a quiet room: report the last timeout, or probe once more.
case $EVENT in TIMEOUT_ROOM_ALIVE*) ;; *) timeout_event ;; esac
print_event
exit "$EVENT_RC"
