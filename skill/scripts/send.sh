#!/usr/bin/env bash
# Send one message to the partner, read from stdin, literally:
#   bash send.sh - <<'EOF'
#   The message, ending with [OVER] (your turn, partner) or [STANDBY] (done)
#   EOF
USAGE="send.sh - [--session NAME] <<'EOF' … EOF   (the message on stdin, never as an argument)"
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
message_given || usage_error "no message: $MESSAGE_USAGE"
require_session
load_settings
send_stdin
echo DELIVERED
