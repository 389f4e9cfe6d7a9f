# Parley skill: shared code, sourced by every script in this folder.
# Portable to macOS (bash 3.2, BSD sed): no associative arrays, no GNU-only sed.
# Tokens live only in the session's 0600 "auth" header file; curl reads it with -H @file,
# so no token ever reaches a command line, a log or stdout.

umask 077

# Exit codes (the table in SKILL.md).
EX_OK=0 EX_USAGE=1 EX_UNREACHABLE=2 EX_TLS=3 EX_TOKEN=4 EX_CODE=5 EX_NO_PARTNER=6
EX_LOOP=7 EX_RETRY=8 EX_TIMEOUT=9 EX_ENDED=10 EX_STANDBY=11 EX_REFUSED=12

SESSION=${PARLEY_SESSION:-default}
URL=${PARLEY_URL:-}
CA=${PARLEY_CA_CERT:-}
SLICE=${PARLEY_WAIT_SLICE:-}
BUDGET=
HEADLESS=
VERBOSE=
ARGS=()
TMP_FILES=()

die() { # die EXIT_CODE FIRST_LINE [DETAIL]
  printf '%s\n' "$2"
  [ -n "${3:-}" ] && printf 'DETAIL: %s\n' "$3"
  exit "$1"
}

usage_error() { die "$EX_USAGE" "USAGE_ERROR" "$1${USAGE:+ (usage: $USAGE)}"; }

# One parser for every script: each uses the flags it needs; the rest are positional ARGS.
parse_flags() {
  while [ $# -gt 0 ]; do
    case $1 in
      --session|--url|--ca|--slice|--budget)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        set_flag "${1#--}" "$2"; shift 2 ;;
      --session=*|--url=*|--ca=*|--slice=*|--budget=*)
        local name=${1%%=*}; set_flag "${name#--}" "${1#*=}"; shift ;;
      --headless) HEADLESS=true; shift ;;
      --attended) HEADLESS=false; shift ;;
      --verbose|-v) VERBOSE=1; shift ;;
      --help|-h) printf 'usage: %s\n' "$USAGE"; exit 0 ;;
      --) shift; ARGS+=("$@"); break ;;
      -) ARGS+=("$1"); shift ;;
      -*) usage_error "unknown flag $1" ;;
      *) ARGS+=("$1"); shift ;;
    esac
  done
  case $SESSION in
    ''|.|..|*[!A-Za-z0-9._-]*) usage_error "session name may hold only letters, digits, '.', '_' and '-'" ;;
  esac
  STATE_DIR=${XDG_STATE_HOME:-$HOME/.local/state}/parley/$SESSION
  AUTH_FILE=$STATE_DIR/auth
}

set_flag() {
  case $1 in
    session) SESSION=$2 ;;
    url) URL=$2 ;;
    ca) CA=$2 ;;
    slice) SLICE=$2 SLICE_FLAG=$2 ;;
    budget) BUDGET=$2 ;;
  esac
}

# --- state --------------------------------------------------------------------------

ensure_state_dir() {
  mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR" || die "$EX_USAGE" "STATE_ERROR" "cannot create $STATE_DIR"
}

state_get() { [ -f "$STATE_DIR/$1" ] && cat "$STATE_DIR/$1"; }
state_put() { printf '%s\n' "$2" > "$STATE_DIR/$1"; }

# Settings: flag or environment first, then what the session saved when it connected.
load_settings() {
  [ -n "$URL" ] || URL=$(state_get url)
  [ -n "$CA" ] || CA=$(state_get ca)
  [ -n "$SLICE" ] || SLICE=$(state_get slice)
  [ -n "$SLICE" ] || SLICE=$(default_slice)
  URL=${URL%/}
  case $SLICE in ''|*[!0-9]*|0) usage_error "slice must be a whole number of seconds (1-110)" ;; esac
  [ -n "$URL" ] || die "$EX_USAGE" "NO_BROKER_URL" "pass --url https://your-broker or set PARLEY_URL"
  case $URL in http://*|https://*) ;; *) usage_error "broker URL must start with http:// or https://" ;; esac
  if [ -n "$CA" ]; then
    [ -r "$CA" ] || die "$EX_USAGE" "CA_CERT_MISSING" "cannot read $CA"
  fi
}

# Each runtime kills a tool call after its own limit; a slice must end well before it.
default_slice() {
  if [ -n "${CLAUDECODE:-}" ] || [ -n "${GEMINI_CLI:-}" ]; then echo 100; else echo 25; fi
}

save_settings() {
  state_put url "$URL"
  if [ -n "$CA" ]; then
    case $CA in /*) ;; *) CA=$PWD/$CA ;; esac
    state_put ca "$CA"
  fi
  # Only a slice chosen on the command line sticks; otherwise each call picks its runtime's default.
  [ -n "${SLICE_FLAG:-}" ] && state_put slice "$SLICE_FLAG"
  return 0
}

require_session() {
  [ -f "$AUTH_FILE" ] || die "$EX_USAGE" "NO_SESSION" "session '$SESSION' is not connected: run host.sh, join.sh or listen.sh first"
}

# Stores the token from a JSON body as an Authorization header line, straight from file to
# file: the token never passes through a command line or stdout.
save_token_from() {
  sed -n -E 's/.*"token":"(tok_[0-9a-f]+)".*/Authorization: Bearer \1/p' "$1" > "$AUTH_FILE.new"
  [ -s "$AUTH_FILE.new" ] || { rm -f "$AUTH_FILE.new"; die "$EX_REFUSED" "BAD_RESPONSE" "the broker sent no token"; }
  mv "$AUTH_FILE.new" "$AUTH_FILE"
  rm -f "$STATE_DIR/last_event" "$STATE_DIR/pending_send" # a new session acknowledges from scratch
}

# The session is over for good: forget its token (settings stay for the next connect).
forget_token() { rm -f "$AUTH_FILE" "$STATE_DIR/last_event" "$STATE_DIR/pending_send"; }

# --- HTTP ---------------------------------------------------------------------------

cleanup() { [ ${#TMP_FILES[@]} -gt 0 ] && rm -f "${TMP_FILES[@]}"; return 0; }
trap cleanup EXIT

# new_tmp VAR: a fresh 0600 file in the session dir, removed when the script exits.
new_tmp() {
  local _tmp
  _tmp=$(mktemp "$STATE_DIR/tmp.XXXXXX") || die "$EX_USAGE" "STATE_ERROR" "cannot write in $STATE_DIR"
  TMP_FILES+=("$_tmp")
  printf -v "$1" '%s' "$_tmp"
}

# api METHOD PATH [extra curl args…]: sets HTTP_STATUS, BODY (file), HEADERS (file).
# Connection and TLS failures end the script here with their own exit code.
api() {
  local method=$1 path=$2 err rc
  shift 2
  new_tmp BODY; new_tmp HEADERS; new_tmp err
  set -- -sS -X "$method" -o "$BODY" -D "$HEADERS" -w '%{http_code}' --connect-timeout 10 "$@"
  [ -n "$CA" ] && set -- --cacert "$CA" "$@"
  [ -f "$AUTH_FILE" ] && set -- -H @"$AUTH_FILE" "$@"
  HTTP_STATUS=$(curl "$@" "$URL$path" 2>"$err")
  rc=$?
  [ $rc -eq 0 ] && return 0
  # A caller that retries (an idempotent send) handles the failure itself.
  [ -n "${API_RETRYING:-}" ] && return $rc
  local detail
  detail=$(head -n 1 "$err")
  case $rc in
    35|51|53|54|58|59|60|64|66|77|80|82|83|90|91)
      die "$EX_TLS" "TLS_ERROR" "${detail:-curl exit $rc} (is PARLEY_CA_CERT / --ca the CA that signed the broker's certificate?)" ;;
    *) die "$EX_UNREACHABLE" "BROKER_UNREACHABLE" "${detail:-curl exit $rc} ($URL)" ;;
  esac
}

# json_str FIELD FILE: a string field of a flat JSON object (escaped quotes are not expected).
json_str() { sed -n -E "s/.*\"$1\":\"([^\"]*)\".*/\1/p" "$2" | head -n 1; }
# json_val FIELD FILE: a bare value (true, false, null, a number).
json_val() { sed -n -E "s/.*\"$1\":([a-z0-9.-]+).*/\1/p" "$2" | head -n 1; }

retry_after() { sed -n -E 's/^[Rr]etry-[Aa]fter: *([0-9]+).*/\1/p' "$HEADERS" | head -n 1; }

# Any non-2xx answer: one machine-readable line, the broker's words as DETAIL, a documented exit code.
http_failure() {
  local code err
  code=$(json_str code "$BODY")
  err=$(json_str error "$BODY")
  case "$HTTP_STATUS:$code" in
    401:*) forget_token; die "$EX_TOKEN" "TOKEN_REJECTED" "${err:-token invalid or expired}: the session is over; connect again (host.sh, join.sh or listen.sh)" ;;
    404:invalid_code) die "$EX_CODE" "INVALID_CODE" "$err" ;;
    400:not_in_room) forget_token; die "$EX_ENDED" "NOT_IN_ROOM" "$err" ;;
    429:loop_paused) die "$EX_LOOP" "LOOP_PAUSED" "$err" ;;
    429:loop_severed) forget_token; die "$EX_LOOP" "SESSION_SEVERED" "$err" ;;
    429:inbox_full) die "$EX_RETRY" "INBOX_FULL retry_after=$(retry_after)" "$err" ;;
    429:*) die "$EX_RETRY" "RATE_LIMITED retry_after=$(retry_after)" "$err" ;;
    503:partner_not_connected) die "$EX_NO_PARTNER" "PARTNER_NOT_CONNECTED" "$err" ;;
    503:draining) die "$EX_RETRY" "BROKER_DRAINING retry_after=$(retry_after)" "$err" ;;
    503:state_unavailable) die "$EX_RETRY" "BROKER_BUSY retry_after=$(retry_after)" "$err" ;;
    409:wait_pending) die "$EX_RETRY" "WAIT_PENDING" "$err" ;;
    502:*|503:*|504:*) die "$EX_UNREACHABLE" "BROKER_UNREACHABLE" "HTTP $HTTP_STATUS from $URL" ;;
    *) die "$EX_REFUSED" "REFUSED status=$HTTP_STATUS code=${code:-none}" "$err" ;;
  esac
}

ok_or_fail() { case $HTTP_STATUS in 2??) return 0 ;; *) http_failure ;; esac; }

# --- messages -------------------------------------------------------------------------

# send_stdin: POST /send with the message read from stdin, byte for byte. It goes from stdin
# to a 0600 file to curl: never through a shell variable, a command line or an expansion, so
# `$(…)`, backticks, `$HOME` and quotes in a message are only text. (The broker drops trailing
# whitespace, such as the heredoc's last newline.)
send_stdin() {
  local f
  new_tmp f
  cat > "$f" || die "$EX_USAGE" "STATE_ERROR" "cannot read the message from stdin"
  # One key for every try of this message: a send whose answer was lost is retried and never
  # delivered twice (the broker answers a repeated key with the first result). The key outlives
  # a run that ends unreachable: sending the same text again next time reuses it.
  local key attempt sent= sum pending
  sum=$(cksum < "$f" | tr -d ' ')
  pending=$(state_get pending_send)
  case $pending in
    "$sum "*) key=${pending#* } ;;
    *) key=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n'); state_put pending_send "$sum $key" ;;
  esac
  for attempt in 1 2 3 4 5 6 7; do
    # A gateway error (a proxy in front lost the broker or its answer) is tried again too.
    API_RETRYING=1 api POST /send -H 'content-type: text/plain; charset=utf-8' -H "idempotency-key: send-$key" --data-binary @"$f" \
      && ! gateway_error && { sent=1; break; }
    sleep 0.3
  done
  # A last try that fails reports it as any call does (BROKER_UNREACHABLE, TLS_ERROR).
  [ -n "$sent" ] || api POST /send -H 'content-type: text/plain; charset=utf-8' -H "idempotency-key: send-$key" --data-binary @"$f"
  # The broker itself answered: this message's fate is known, the next text gets a key of its own.
  gateway_error || rm -f "$STATE_DIR/pending_send"
  ok_or_fail
}

# A 502/503/504 that is not the broker's own JSON refusal: the answer came from a proxy.
gateway_error() {
  case $HTTP_STATUS in 502|503|504) [ -z "$(json_str code "$BODY")" ] ;; *) return 1 ;; esac
}

# The message comes only on stdin, announced by a lone "-" (send.sh - <<'EOF' … EOF). Text in
# the arguments is refused: the caller's shell has already expanded it before we see it.
MESSAGE_USAGE="pass the message on stdin with a quoted heredoc: $(basename "$0") - <<'EOF' (the message, then a line EOF)"
message_given() {
  case ${#ARGS[@]}:${ARGS[0]:-} in
    0:) return 1 ;;
    1:-) return 0 ;;
    *) usage_error "a message is never an argument: $MESSAGE_USAGE" ;;
  esac
}

# event_kind: the kind of the /wait answer in BODY, as the broker's event names say it
# (message, partner_joined, partner_left, room_closed, standby_pause, loop_alarm, resumed,
# rule_changed, undelivered, broker_restarting, timeout). The one place that reads it: the
# `Parley-Event` header, or the frame's text from a broker that does not send it.
event_kind() {
  local first second kind
  # The broker says what it sent in a header; a broker too old to say so is read from the text.
  kind=$(sed -n -E 's/^[Pp]arley-[Ee]vent: *([a-z_]+).*/\1/p' "$HEADERS" | head -n 1)
  [ -n "$kind" ] && { echo "$kind"; return; }
  first=$(sed -n 1p "$BODY")
  second=$(sed -n 2p "$BODY")
  case $first in
    TIMEOUT:*) echo timeout; return ;;
    MESSAGE_RECEIVED) ;;
    *) echo unknown; return ;;
  esac
  # Lines 2+ are the broker's own text; a partner's lines are always prefixed with "│", so
  # only the broker can put "[SYSTEM" at the start of line 2.
  case $second in
    '[SYSTEM ALERT]:'*) echo loop_alarm ;;
    # Before the patterns below: these notices may name someone who left or something that expired.
    '[SYSTEM]: Room rule changed'*) echo rule_changed ;;
    '[SYSTEM]: A message you sent'*) echo undelivered ;;
    '[SYSTEM]:'*'has joined. Session is live!'*) echo partner_joined ;;
    '[SYSTEM]:'*'has left the room.'*|'[SYSTEM]:'*"'s session expired."*) echo partner_left ;;
    '[SYSTEM]: Both agents are on STANDBY'*) echo standby_pause ;;
    '[SYSTEM]:'*'resumed the session after the loop alarm'*) echo resumed ;;
    '[SYSTEM]: The broker is restarting'*) echo broker_restarting ;;
    '[SYSTEM]: You left the room.'*|'[SYSTEM]:'*'closed the room'*|'[SYSTEM]:'*'expired'*) echo room_closed ;;
    '[SYSTEM]:'*) echo notice ;;
    *) echo message ;;
  esac
}

# wait_once SECONDS: one /wait slice. Sets EVENT (first output line), EVENT_RC and BODY.
wait_once() {
  # Acknowledging client: each wait names the last event shown, so the broker hands out again
  # whatever never reached us (a cut connection, a proxy restart) instead of losing it.
  local last id
  last=$(state_get last_event)
  api GET "/wait?timeout=$1&ack=${last}" --max-time $(($1 + 30))
  ok_or_fail
  EVENT_RC=$EX_OK
  id=$(sed -n -E 's/^[Pp]arley-[Ee]vent-[Ii]d: *(evt_[0-9a-f]+).*/\1/p' "$HEADERS" | head -n 1)
  if [ -n "$id" ]; then
    # Shown already (its ack was lost on the way): take the next one instead.
    if [ "$id" = "$last" ]; then wait_once "$1"; return; fi
    state_put last_event "$id"
  fi
  case $(event_kind) in
    timeout) timeout_event ;;
    message)
      local header from signal
      header=$(sed -n 2p "$BODY")
      from=$(printf '%s\n' "$header" | sed -n -E 's/.*(Agent-[0-9a-f]+) \[(OVER|STANDBY)\]$/\1/p')
      signal=$(printf '%s\n' "$header" | sed -n -E 's/.*(Agent-[0-9a-f]+) \[(OVER|STANDBY)\]$/\2/p')
      EVENT="MESSAGE from=${from:-unknown} signal=${signal:-OVER}" ;;
    loop_alarm)
      # The second alarm severs the session: the same kind, told apart by its words.
      if grep -q '^\[SYSTEM ALERT\]: Loop detected again' "$BODY"; then
        EVENT=SESSION_SEVERED EVENT_RC=$EX_LOOP; forget_token
      else
        EVENT=LOOP_ALARM EVENT_RC=$EX_LOOP
      fi ;;
    partner_joined) EVENT=PARTNER_JOINED ;;
    partner_left) EVENT=PARTNER_LEFT EVENT_RC=$EX_ENDED ;;
    standby_pause) EVENT=STANDBY_PAUSE EVENT_RC=$EX_STANDBY ;;
    resumed) EVENT=RESUMED ;;
    broker_restarting)
      # Several brokers on a shared backend: the session survives, wait again shortly.
      if grep -q 'Your session survives' "$BODY"; then EVENT="BROKER_RESTARTING retry_after=3" EVENT_RC=$EX_RETRY
      else EVENT=BROKER_RESTARTING EVENT_RC=$EX_ENDED; forget_token; fi ;;
    room_closed) EVENT=ROOM_CLOSED EVENT_RC=$EX_ENDED; forget_token ;;
    rule_changed|undelivered|watcher_joined|notice) EVENT=NOTICE ;;
    *) EVENT="UNKNOWN_EVENT" EVENT_RC=$EX_REFUSED ;;
  esac
}

# A slice ended quietly: say whether the room and the partner are still there.
timeout_event() {
  api GET /ping
  ok_or_fail
  if [ "$(json_val room_alive "$BODY")" != true ]; then
    forget_token
    EVENT=ROOM_CLOSED EVENT_RC=$EX_ENDED
    printf '%s\n' "[local]: the room is gone (closed or expired)" > "$BODY"
    return
  fi
  EVENT="TIMEOUT_ROOM_ALIVE last_seen_ms=$(json_val partner_last_seen_ms "$BODY") partner_connected=$(json_val partner_connected "$BODY")"
  EVENT_RC=$EX_TIMEOUT
  : > "$BODY"
}

print_event() {
  printf '%s\n' "$EVENT"
  [ -s "$BODY" ] && cat "$BODY" && printf '\n'
  return 0
}

# --- connecting -----------------------------------------------------------------------

# Before connecting: a session still in a live room is never silently replaced.
begin_connect() {
  ensure_state_dir
  load_settings
  if [ -f "$AUTH_FILE" ]; then
    api GET /ping
    if [ "$HTTP_STATUS" = 200 ] && [ "$(json_val room_alive "$BODY")" = true ]; then
      die "$EX_USAGE" "SESSION_IN_USE session=$SESSION" "this session is still in a room: run leave.sh first (on your human's word), or pick another --session"
    fi
    forget_token
  fi
}

# redeem CODE: POST /register-and-join. An invite makes you joiner, a listener code host.
redeem() {
  case $1 in
    ''|*[!A-Za-z0-9_]*) die "$EX_CODE" "INVALID_CODE" "Invalid or expired code" ;;
  esac
  api POST "/register-and-join/$1"
  ok_or_fail
  save_settings
  save_token_from "$BODY"
  local role
  role=$(json_str role "$BODY")
  state_put role "$role"
  printf 'ROLE: %s\nHEADLESS: %s\nSTATUS: %s\nSESSION: %s\n' \
    "$role" "$(json_val headless "$BODY")" "$(json_str status "$BODY")" "$SESSION"
  # The host speaks first: the room's creator in a standard room, the caller in a listener room.
  if [ "$role" = host ]; then
    printf "NEXT: you speak first: send your opening with loop.sh - <<'EOF' (the message, ending [OVER]; then a line EOF)\n"
  else
    printf 'NEXT: the host speaks first: run loop.sh (no message) to wait for their opening\n'
  fi
  printf 'RULES:\n'
  printf '%b\n' "$(json_str rules "$BODY")"
}

# open_room standard|listener: POST /setup, a fresh token that opens a room in one call.
open_room() {
  local body
  body="{\"type\":\"$1\"${HEADLESS:+,\"headless\":$HEADLESS}}"
  api POST /setup -H 'content-type: application/json' --data-binary "$body"
  ok_or_fail
  save_settings
  save_token_from "$BODY"
  ROOM_CODE=$(json_str code "$BODY")
  ROOM_ROLE=$(json_str role "$BODY")
  state_put role "$ROOM_ROLE"
}
