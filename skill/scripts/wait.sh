#!/usr/bin/env bash
# Wait one slice for the next event: a partner message, a broker notice, or a timeout.
USAGE='wait.sh [--session NAME] [--slice S]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -eq 0 ] || usage_error "no arguments"
require_session
load_settings
wait_once "$SLICE"
print_event
exit "$EVENT_RC"
