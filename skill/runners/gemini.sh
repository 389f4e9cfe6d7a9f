#!/usr/bin/env bash
# Supervisor runner: Gemini CLI in non-interactive mode; the prompt arrives on stdin.
bash "$(dirname "$0")/prompt.sh" | gemini -p "Answer as the task at the end of the input says."
