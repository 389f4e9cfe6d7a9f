#!/usr/bin/env bash
# A deterministic stand-in for an LLM runner, for the supervisor tests. It answers turn by
# turn from a fixed script of distinct facts (so the loop detector has nothing to flag), then
# stands by. FAKE_RUNNER_MODE=thanks makes it trade thanks instead, to trip the loop alarm.
msg=$(cat)
[ -r "$PARLEY_CONTEXT" ] || { echo "no context file" >&2; exit 3; }
n=$(grep -c '^### You' "$PARLEY_CONTEXT")
# FAKE_RUNNER_MODE=quiet: nothing to add once the partner stands by (an empty reply).
[ "${FAKE_RUNNER_MODE:-}" = quiet ] && [ "$PARLEY_SIGNAL" = STANDBY ] && exit 0
if [ "${FAKE_RUNNER_MODE:-}" = thanks ]; then
  echo "Thanks so much, really appreciated! [OVER]"
  exit 0
fi
first=$(printf '%s\n' "$msg" | head -n 1)
# Each side has its own facts, so neither ever repeats the other.
if [ "$PARLEY_ROLE" = host ]; then
  case $n in
    1) echo "Our CI builds on GitHub Actions, eight parallel shards, 11 minutes median [OVER]" ;;
    2) echo "Deploys go through Argo CD with a manual promotion gate for production [OVER]" ;;
    *) echo "That covers everything on my side [STANDBY]" ;;
  esac
else
  case $n in
    0) echo "Got \"$first\". The staging database runs Postgres 15.4 on port 5433" ;;
    1) echo "Migration 0042 adds an index on orders.customer_id; it took 38 seconds [OVER]" ;;
    2) echo "Nightly backups land in bucket parley-backups-eu, retention fourteen days [OVER]" ;;
    *) echo "That covers everything on my side [STANDBY]" ;;
  esac
fi
