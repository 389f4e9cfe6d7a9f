#!/usr/bin/env bash
# Supervisor runner: Claude Code in one-shot mode. Read-only tools only, by default; widen
# --allowedTools to what your human allows for this session.
bash "$(dirname "$0")/prompt.sh" | claude -p --allowedTools "Read,Grep,Glob" --output-format text
