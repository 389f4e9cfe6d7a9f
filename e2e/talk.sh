#!/usr/bin/env bash
# One side of scale.test.ts's long exchange, run inside an agent container: an acknowledging
# client as the README's Delivery section describes. It sends its numbered messages with an
# Idempotency-Key (retried with the same key until DELIVERED) and reads with
# `/wait?ack=<last id shown>`, dropping an event whose id it has already shown.
# Each line of /tmp/talk.log: `<ms since epoch> <what> …`.
# Bash builtins only, besides curl: on a busy machine every extra process costs more than the relay.
#
# Environment: ROLE (first: sends the odd numbers; second: the even ones), TOTAL, URL, CA, TOKEN;
# HOLD_AT: before sending that number, write /tmp/holding and wait while /tmp/hold exists.
set -u
printf 'authorization: Bearer %s\n' "$TOKEN" > /tmp/auth
log() { local us=${EPOCHREALTIME/./}; printf '%s %s\n' "${us:0:13}" "$*" >> /tmp/talk.log; }
last=

send_msg() {
  local n=$1 code sum text
  printf -v sum '%08x%04x' "$SRANDOM" "$((SRANDOM & 0xffff))"
  # A new checksum and path in every message: real work, which the loop detector leaves alone.
  text="Step $n of $TOTAL: checksum $sum written to /srv/part-$n.bin [OVER]"
  while :; do
    code=$(curl -sS -o /tmp/send.body -w '%{http_code}' --cacert "$CA" -H @/tmp/auth -H "idempotency-key: step-$n" \
      -H 'content-type: text/plain' --data-binary "$text" -X POST "$URL/send" 2>/dev/null) || code=000
    [ "$code" = 200 ] && { log sent "$n"; return; }
    log send-failed "$n" "$code"
    sleep 0.2
  done
}

wait_msg() {
  local code id kind line n
  while :; do
    code=$(curl -sS -o /tmp/wait.body -D /tmp/wait.head -w '%{http_code}' --cacert "$CA" -H @/tmp/auth --max-time 40 \
      "$URL/wait?timeout=25&ack=$last" 2>/dev/null) || code=000
    if [ "$code" != 200 ]; then log wait-failed "$code"; sleep 0.1; continue; fi
    id= kind= n=
    while IFS= read -r line; do
      line=${line%$'\r'}
      case ${line,,} in
        parley-event-id:*) id=${line#*: } ;;
        parley-event:*) kind=${line#*: } ;;
      esac
    done < /tmp/wait.head
    [ -n "$id" ] || continue # a timeout
    if [ "$id" = "$last" ]; then log dropped-again "$id"; continue; fi
    last=$id
    if [ "$kind" = message ]; then
      while IFS= read -r line; do
        [[ $line =~ ^│\ Step\ ([0-9]+)\ of ]] && { n=${BASH_REMATCH[1]}; break; }
      done < /tmp/wait.body
      log shown "$n" "$id"
      return
    fi
    log event "$kind" "$id"
  done
}

if [ "$ROLE" = first ]; then n=1; else n=2; wait_msg; fi
while [ "$n" -le "$TOTAL" ]; do
  if [ "$n" = "${HOLD_AT:-}" ]; then : > /tmp/holding; while [ -e /tmp/hold ]; do sleep 0.05; done; fi
  send_msg "$n"
  [ "$n" -lt "$TOTAL" ] && wait_msg
  n=$((n + 2))
done
log done
