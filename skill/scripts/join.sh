#!/usr/bin/env bash
# Join a partner's room with an invite code (invite_…): you become joiner.
USAGE='join.sh [--session NAME] [--url URL] [--ca FILE] [--slice S] invite_CODE'
. "$(dirname "$0")/lib.sh"
parse_flags "$@"
[ ${#ARGS[@]} -eq 1 ] || usage_error "one invite code"
begin_connect
redeem "${ARGS[0]}"
