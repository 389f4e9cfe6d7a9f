#!/usr/bin/env bash
# Installs (or upgrades in place) the Parley skill for one agent runtime:
#   bash skill/install.sh --runtime claude|codex|gemini [--dest DIR] [--no-settings]
# Copies SKILL.md, scripts/, runners/, the supervisor and that runtime's permission template,
# with every skill path rewritten to where it is installed (permission rules match the exact
# command text, so they must name the real path). Tests are not installed. A second run
# replaces the old copy whole, so scripts that no longer exist are gone. Unless --no-settings,
# the permission rules are put in place: merged into ~/.claude/settings.json (existing rules
# kept, the first backup kept), or as a file of their own for Codex and Gemini CLI.
set -u
umask 022
USAGE='install.sh --runtime claude|codex|gemini [--dest DIR] [--no-settings]'
die() { printf '%s\n' "$2"; [ -n "${3:-}" ] && printf 'DETAIL: %s\n' "$3"; exit "$1"; }
usage_error() { die 1 USAGE_ERROR "$1 (usage: $USAGE)"; }

SRC=$(cd "$(dirname "$0")" && pwd)
RUNTIME= DEST= SETTINGS=1
while [ $# -gt 0 ]; do
  case $1 in
    --runtime|--dest) [ $# -ge 2 ] || usage_error "$1 needs a value"; [ "$1" = --runtime ] && RUNTIME=$2 || DEST=$2; shift 2 ;;
    --runtime=*) RUNTIME=${1#*=}; shift ;;
    --dest=*) DEST=${1#*=}; shift ;;
    --no-settings) SETTINGS=; shift ;;
    --help|-h) printf 'usage: %s\n' "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument $1" ;;
  esac
done
case $RUNTIME in claude|codex|gemini) ;; *) usage_error "--runtime must be claude, codex or gemini" ;; esac
[ -n "${HOME:-}" ] || die 1 USAGE_ERROR "HOME is not set"
DEST=${DEST:-$HOME/.$RUNTIME/skills/parley}
case $DEST in /*) ;; *) DEST=$PWD/$DEST ;; esac
DEST=${DEST%/}
# The path ends up unquoted in commands and permission rules: keep it to plain characters.
case $DEST in *[!A-Za-z0-9._/-]*) usage_error "the destination may hold only letters, digits, '.', '_', '-' and '/'" ;; esac
# How SKILL.md and the rules name the folder: from ~ when it is under HOME, as the runtimes write it.
case $DEST in "$HOME"/*) PREFIX="~/${DEST#"$HOME"/}" ;; *) PREFIX=$DEST ;; esac

# Never replace a folder that is not a Parley skill.
if [ -e "$DEST" ] && ! grep -qs '^name: parley$' "$DEST/SKILL.md"; then
  die 1 DEST_NOT_PARLEY "$DEST exists and is not a Parley skill: pick another --dest or remove it yourself"
fi

case $RUNTIME in
  claude) TEMPLATE=claude.settings.json ;;
  gemini) TEMPLATE=gemini.policy.toml ;;
  codex) TEMPLATE=codex.rules ;;
esac

parent=$(dirname "$DEST")
mkdir -p "$parent" || die 1 STATE_ERROR "cannot create $parent"
NEW=$(mktemp -d "$parent/.parley-new.XXXXXX") || die 1 STATE_ERROR "cannot write in $parent"
trap 'rm -rf "$NEW"' EXIT
mkdir -p "$NEW/scripts" "$NEW/runners" "$NEW/settings"
cp "$SRC"/SKILL.md "$SRC"/supervisor "$NEW"/ &&
  cp "$SRC"/scripts/*.sh "$NEW"/scripts/ &&
  cp "$SRC"/runners/*.sh "$NEW"/runners/ &&
  cp "$SRC/settings/$TEMPLATE" "$NEW"/settings/ &&
  { [ "$RUNTIME" != claude ] || cp "$SRC/settings/merge.mjs" "$NEW"/settings/; } ||
  die 1 STATE_ERROR "cannot copy the skill into $parent"
# Every runtime's spelling of the skill folder becomes this install's, also where a rule spells
# it as a regular expression (dots escaped): the sed replacement for that is PREFIX with "\\.".
PREFIX_RE=$(printf '%s' "$PREFIX" | sed 's/\./\\\\./g')
for f in "$NEW"/SKILL.md "$NEW"/supervisor "$NEW"/scripts/*.sh "$NEW"/runners/*.sh "$NEW/settings/$TEMPLATE"; do
  sed -e "s#~/\.claude/skills/parley#$PREFIX#g" -e "s#~/\.codex/skills/parley#$PREFIX#g" -e "s#~/\.gemini/skills/parley#$PREFIX#g" \
    -e "s#~/\\\\\.gemini/skills/parley#$PREFIX_RE#g" "$f" > "$f.tmp" &&
    mv "$f.tmp" "$f" || die 1 STATE_ERROR "cannot write $f"
done
chmod 755 "$NEW" "$NEW"/supervisor "$NEW"/scripts/*.sh "$NEW"/runners/*.sh

# Swap the new copy in whole: an upgrade keeps nothing of the old one.
if [ -e "$DEST" ]; then
  rm -rf "$DEST.old" && mv "$DEST" "$DEST.old" || die 1 STATE_ERROR "cannot move the old $DEST aside"
fi
mv "$NEW" "$DEST" || die 1 STATE_ERROR "cannot move the new copy to $DEST"
rm -rf "$DEST.old"
trap - EXIT
echo "INSTALLED runtime=$RUNTIME dest=$DEST"

own_rules() {
  mkdir -p "$(dirname "$1")" && cp "$DEST/settings/$TEMPLATE" "$1" || die 1 STATE_ERROR "cannot write $1"
  echo "RULES $1"
}

[ -n "$SETTINGS" ] || exit 0
case $RUNTIME in
  claude) node "$DEST/settings/merge.mjs" "$DEST/settings/$TEMPLATE" "$HOME/.claude/settings.json" || exit 1 ;;
  # Codex and Gemini CLI: a rules file of its own, so nothing else of the user's is touched and
  # an upgrade replaces it.
  codex) own_rules "$HOME/.codex/rules/parley.rules" ;;
  gemini) own_rules "$HOME/.gemini/policies/parley.toml" ;;
esac
