#!/usr/bin/env bash
# Send one message to the partner. End it with [OVER] (your turn, partner) or [STANDBY] (done).
USAGE='send.sh [--session NAME] "message [OVER]"   (or the message on stdin)'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
require_session
load_settings
message_from_args
send_text "$MESSAGE"
echo DELIVERED
