#!/usr/bin/env bash
# Supervisor runner: a local model through ollama (PARLEY_OLLAMA_MODEL, default llama3.2).
bash "$(dirname "$0")/prompt.sh" | ollama run "${PARLEY_OLLAMA_MODEL:-llama3.2}"
