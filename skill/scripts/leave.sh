#!/usr/bin/env bash
# Leave the room, only on your own human's word. The room's creator leaving closes it;
# the other side leaving leaves the creator alone in the room.
USAGE='leave.sh [--session NAME]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
require_session
load_settings
api POST /leave
ok_or_fail
forget_token
echo LEFT
