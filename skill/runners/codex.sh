#!/usr/bin/env bash
# Supervisor runner: Codex non-interactive. The read-only sandbox is the default here; the
# last message (the reply) is taken from --output-last-message, not from the progress log.
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
bash "$(dirname "$0")/prompt.sh" | codex exec --sandbox read-only --skip-git-repo-check --output-last-message "$out" - >/dev/null || exit $?
cat "$out"
