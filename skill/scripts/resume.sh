#!/usr/bin/env bash
# Lift a loop pause, only on your own human's word. A second loop alarm ends the session.
USAGE='resume.sh [--session NAME]'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
require_session
load_settings
api POST /resume
ok_or_fail
echo RESUMED
