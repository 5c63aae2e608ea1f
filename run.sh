#!/usr/bin/env bash
# Starts one distributed-sqlite node, with Litestream when REPLICA_URL is set.
#
#   REPLICA_URL unset: exec the node (no backup). Same script for local use.
#   REPLICA_URL set:   check it; if DATABASE_PATH is missing, seed it (this node's own backup when
#                      one exists, else RESTORE_FROM's, else start empty and bootstrap from peers;
#                      RESTORE_FROM=all: the union of every backup); check that no other node
#                      writes this node's backup path; then exec `litestream replicate -exec node`
#                      with LITESTREAM=1. The node migrates the database itself as it opens it.
#
# Litestream becomes the main process: it forwards SIGTERM/SIGINT to the node, waits for it to
# exit, ships the last WAL pages and exits. So a stop loses no acknowledged increment.
#
# Commands (the environment set up exactly as for a start; they work with DATABASE_PATH missing):
#   run.sh litestream generations|snapshots|wal|restore [ARGS]   that Litestream command on this
#                                 node's backup, e.g. `run.sh litestream restore -o /tmp/a.db`
#   run.sh recover [--output PATH] [--from NAME,…] [--timestamp T]   the union of every node's
#                                 backup under REPLICA_URL: a report per backup, and the merged
#                                 database written to PATH (see the README, Disaster recovery)
#
# Environment (besides the node's own, see README):
#   DATABASE_PATH                 the node's SQLite file (./data/counters.db)
#   REPLICA_URL                   s3://bucket/prefix, gcs://…, abs://…, sftp://…, file:///abs/dir;
#                                 each node writes under REPLICA_URL/NODE_ID
#   NODE_ID                       derived, not read: FLY_MACHINE_ID, else NODE_NAME, else the host name.
#                                 One writer per path: give every node on one host its own NODE_NAME
#   RESTORE_FROM                  what seeds a node whose database is missing:
#                                   NAME         that node's backup, only when this node has none of its own
#                                   all          the union of every backup under REPLICA_URL (file:// lists
#                                                them; its own included), whether or not it has its own
#                                   NAME,NAME,…  the union of those backups
#   RESTORE_TIMESTAMP             with RESTORE_FROM=all or NAME,NAME,…: the union as of this time
#                                 (RFC 3339, e.g. 2026-01-31T14:00:00Z), to undo a bad deploy
#   LITESTREAM_SYNC_INTERVAL      how often WAL is shipped (10s): the recovery point of a full-cluster loss
#   LITESTREAM_ENDPOINT           S3 endpoint (default AWS_ENDPOINT_URL_S3, which `fly storage create` sets)
#   LITESTREAM_REGION             S3 region (default AWS_REGION)
#   LITESTREAM_FORCE_PATH_STYLE   true for stores that need path-style requests (MinIO)
#   LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
#   BACKUP_TAKEOVER=1             take this node's backup path over from another writer that looks live
#                                 (one silent for 5 sync intervals, at least 1 min, is taken over anyway)
#   RUN_AS_USER                   when started as root (Fly mounts volumes root-owned): chown the
#                                 database folder to this user and drop to it before anything else
#   LITESTREAM_BIN, NODE_BIN      override the binaries
#
# Exit status: 2 = bad configuration (message says which setting), 1 = a step failed,
# 3 = another live node writes this node's backup path (BACKUP_TAKEOVER=1 overrides), otherwise the node's (or Litestream's) own.
# `run.sh recover` exits with the command's codes (3 there: no backup found at all).
set -euo pipefail

readonly DEFAULT_SYNC_INTERVAL=10s
readonly EXIT_BAD_CONFIG=2
readonly EXIT_OTHER_WRITER=3
# `distributed-sqlite recover` exits so when there is no backup at all.
readonly RECOVER_NO_BACKUPS=3

say() { printf 'run.sh: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
bad_config() { say "error: $*"; exit "$EXIT_BAD_CONFIG"; }

# The commands (see the top), e.g. `fly ssh console -C "/app/run.sh litestream generations"`.
MODE=start
if [ "$#" -gt 0 ]; then
  case "${1:-} ${2:-}" in
    'litestream generations' | 'litestream snapshots' | 'litestream wal' | 'litestream restore') MODE=litestream ;;
    recover\ *) MODE=recover ;;
    *) bad_config "usage: run.sh [litestream generations|snapshots|wal|restore [ARGS] | recover [ARGS]]; a start is configured with environment variables (see the top of run.sh)" ;;
  esac
fi

APP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly APP_DIR
readonly MAIN="$APP_DIR/dist/src/main.js"
readonly CONFIG="$APP_DIR/litestream.yml"

# Same default as src/config.ts; made absolute so the node and Litestream name the same file
# whatever directory each resolves relative paths against.
DATABASE_PATH=$(realpath -m -- "${DATABASE_PATH:-./data/counters.db}")
export DATABASE_PATH
DATA_DIR=$(dirname -- "$DATABASE_PATH")
readonly DATA_DIR

# Fly.io mounts volumes owned by root. Start as root only long enough to hand the database folder
# to the unprivileged user, then run everything else (restore included) as that user.
if [ "$(id -u)" = 0 ] && [ -n "${RUN_AS_USER:-}" ]; then
  id -u -- "$RUN_AS_USER" >/dev/null 2>&1 || bad_config "RUN_AS_USER=$RUN_AS_USER is not a user on this system"
  mkdir -p -- "$DATA_DIR"
  chown -R -- "$RUN_AS_USER:$(id -gn -- "$RUN_AS_USER")" "$DATA_DIR"
  say "dropping root: continuing as $RUN_AS_USER (owner of $DATA_DIR)"
  export HOME
  HOME=$(getent passwd "$RUN_AS_USER" | cut -d: -f6)
  exec setpriv --reuid="$(id -u -- "$RUN_AS_USER")" --regid="$(id -g -- "$RUN_AS_USER")" --init-groups \
    -- "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

NODE_BIN=${NODE_BIN:-$(command -v node || true)}
[ -n "$NODE_BIN" ] || fail "node is not on PATH (set NODE_BIN)"
[ -f "$MAIN" ] || fail "$MAIN is missing: build first (npm run build)"
mkdir -p -- "$DATA_DIR" || fail "cannot create the database folder $DATA_DIR"

if [ -z "${REPLICA_URL:-}" ] && [ "$MODE" != start ]; then
  bad_config "REPLICA_URL is not set: there is no backup to look at"
fi
if [ -z "${REPLICA_URL:-}" ]; then
  say "REPLICA_URL is not set: running the node without Litestream (no backup of $DATABASE_PATH)"
  say "starting the node (it migrates $DATABASE_PATH as it opens it)"
  exec "$NODE_BIN" "$MAIN"
fi

# --- Litestream from here on ------------------------------------------------------------------

# Litestream 0.3.13 reads no query string and its URL parser is lenient, so check the shape here
# and name the setting in the message rather than fail later inside Litestream.
REPLICA_URL=${REPLICA_URL%/}
case "$REPLICA_URL" in
  *[[:space:]?#]*) bad_config "REPLICA_URL must not contain spaces, '?' or '#', got '$REPLICA_URL'" ;;
  s3://[!/]* | gcs://[!/]* | abs://[!/]* | sftp://[!/]*) ;;
  file:///?*) ;;
  *) bad_config "REPLICA_URL must be s3://BUCKET[/PREFIX], gcs://…, abs://…, sftp://… or file:///ABSOLUTE/DIR, got '$REPLICA_URL'" ;;
esac
export REPLICA_URL

# The backup path of this node. One writer per path, so it comes from the machine, never from a
# setting shared by every machine of the app.
NODE_ID=${FLY_MACHINE_ID:-${NODE_NAME:-${HOSTNAME:-$(uname -n)}}}
[[ "$NODE_ID" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ ]] \
  || bad_config "the backup name (FLY_MACHINE_ID, else NODE_NAME, else the host name) must be letters, digits, '.', '_' or '-', got '$NODE_ID'"
export NODE_ID
# Who writes the backup path, as the node records it in the database (one writer per path). On
# Fly.io the Machine id; off it, a NODE_NAME set explicitly is the identity (a container recreated
# under it gets a new host name, and must still take its own backup back), else the host name.
BACKUP_MACHINE=${FLY_MACHINE_ID:-$(uname -n)}
BACKUP_WRITER_IDENTITY=machine
if [ -z "${FLY_MACHINE_ID:-}" ] && [ -n "${NODE_NAME:-}" ]; then BACKUP_WRITER_IDENTITY=node-name; fi
export BACKUP_MACHINE BACKUP_WRITER_IDENTITY
BACKUP_TAKEOVER=${BACKUP_TAKEOVER:-}
case "$BACKUP_TAKEOVER" in
  '' | 1) export BACKUP_TAKEOVER ;;
  *) bad_config "BACKUP_TAKEOVER must be 1 (take this backup path over from a writer that is gone) or unset, got '$BACKUP_TAKEOVER'" ;;
esac

RESTORE_FROM=${RESTORE_FROM:-}
readonly BACKUP_NAME='[A-Za-z0-9][A-Za-z0-9._-]{0,127}'
if [ -n "$RESTORE_FROM" ] && ! [[ "$RESTORE_FROM" =~ ^$BACKUP_NAME(,$BACKUP_NAME)*$ ]]; then
  bad_config "RESTORE_FROM must be a backup name (a machine id or node name), 'all', or names separated by commas, got '$RESTORE_FROM'"
fi

if [ "$RESTORE_FROM" = all ] && [[ "$REPLICA_URL" != file://* ]]; then
  bad_config "RESTORE_FROM=all lists the backups of a file:// replica only (Litestream cannot list a prefix of $REPLICA_URL): name them, RESTORE_FROM=NAME,NAME,… (the folders under REPLICA_URL)"
fi

RESTORE_TIMESTAMP=${RESTORE_TIMESTAMP:-}
if [ -n "$RESTORE_TIMESTAMP" ]; then
  [[ "$RESTORE_TIMESTAMP" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$ ]] \
    || bad_config "RESTORE_TIMESTAMP must be an RFC 3339 time such as 2026-01-31T14:00:00Z, got '$RESTORE_TIMESTAMP'"
  # One node set back in time gets the later counts straight back from its peers (max-merge):
  # a point in time is a state of the whole cluster, restored from the union.
  [ "$RESTORE_FROM" = all ] || [[ "$RESTORE_FROM" == *,* ]] \
    || bad_config "RESTORE_TIMESTAMP needs RESTORE_FROM=all or NAME,NAME,… (a point in time is restored for the whole cluster, from the union), got RESTORE_FROM='$RESTORE_FROM'"
fi

export LITESTREAM_SYNC_INTERVAL=${LITESTREAM_SYNC_INTERVAL:-$DEFAULT_SYNC_INTERVAL}
[[ "$LITESTREAM_SYNC_INTERVAL" =~ ^[0-9]+(ms|s|m|h)$ ]] \
  || bad_config "LITESTREAM_SYNC_INTERVAL must be a duration like 500ms, 10s or 1m, got '$LITESTREAM_SYNC_INTERVAL'"
export LITESTREAM_ENDPOINT=${LITESTREAM_ENDPOINT:-${AWS_ENDPOINT_URL_S3:-}}
export LITESTREAM_REGION=${LITESTREAM_REGION:-${AWS_REGION:-}}
# Litestream expands these into litestream.yml as plain text before parsing it: a newline would
# add YAML keys of its own, so no whitespace or control character at all (like REPLICA_URL).
for setting in LITESTREAM_ENDPOINT LITESTREAM_REGION; do
  case "${!setting}" in
    *[[:space:][:cntrl:]]*) bad_config "$setting must not contain whitespace or control characters, got '${!setting}'" ;;
  esac
done
export LITESTREAM_FORCE_PATH_STYLE=${LITESTREAM_FORCE_PATH_STYLE:-}
case "$LITESTREAM_FORCE_PATH_STYLE" in
  '' | true | false) ;;
  *) bad_config "LITESTREAM_FORCE_PATH_STYLE must be true or false, got '$LITESTREAM_FORCE_PATH_STYLE'" ;;
esac
if [[ "$REPLICA_URL" == s3://* ]] && [ -z "${LITESTREAM_ACCESS_KEY_ID:-${AWS_ACCESS_KEY_ID:-}}" ]; then
  say "warning: no LITESTREAM_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID; Litestream will try the instance's own credentials"
fi

# The platform binary from @flydotio/litestream, not its npm wrapper (node_modules/.bin), which
# runs it through spawnSync and would not pass SIGTERM on.
if [ -z "${LITESTREAM_BIN:-}" ]; then
  platform=$("$NODE_BIN" -p 'process.platform + "-" + process.arch')
  LITESTREAM_BIN="$APP_DIR/node_modules/@flydotio/litestream-$platform/litestream"
  [ -x "$LITESTREAM_BIN" ] || LITESTREAM_BIN=$(command -v litestream || true)
fi
[ -n "$LITESTREAM_BIN" ] && [ -x "$LITESTREAM_BIN" ] \
  || fail "the litestream binary was not found (npm install @flydotio/litestream, or set LITESTREAM_BIN)"

# For `recover` (the node's CLI runs Litestream restores with the same settings).
export LITESTREAM_BIN LITESTREAM_CONFIG="$CONFIG"

# `litestream generations [ARGS]` for this node's backup path, with or without the database.
generations() {
  if [ -e "$DATABASE_PATH" ]; then
    "$LITESTREAM_BIN" generations -config "$CONFIG" "$@" "$DATABASE_PATH"
    return
  fi
  # Litestream stats the database to show each generation's lag behind it, and fails when it is
  # missing: the very state this is needed in. Any existing file will do there; the backup path
  # does not depend on it (REPLICA_URL/NODE_ID).
  local placeholder status=0
  placeholder=$(mktemp "${TMPDIR:-/tmp}/run-sh-generations.XXXXXX")
  DATABASE_PATH=$placeholder "$LITESTREAM_BIN" generations -config "$CONFIG" "$@" "$placeholder" || status=$?
  rm -f -- "$placeholder"
  return "$status"
}

if [ "$MODE" = litestream ]; then
  command=$2
  shift 2
  say "litestream $command for $DATABASE_PATH, backup $REPLICA_URL/$NODE_ID"
  if [ "$command" = generations ]; then
    [ -e "$DATABASE_PATH" ] || say "$DATABASE_PATH is missing: the lag column is measured from now"
    generations "$@"
    exit
  fi
  exec "$LITESTREAM_BIN" "$command" -config "$CONFIG" "$@" "$DATABASE_PATH"
fi
if [ "$MODE" = recover ]; then
  shift
  say "recover: the union of the backups under $REPLICA_URL"
  exec "$NODE_BIN" "$MAIN" recover "$@"
fi

# Restores the backup named $1 (a NODE_ID) into DATABASE_PATH if one exists; succeeds either way
# and leaves the file missing when there was none. Any other failure (credentials, network) stops
# the start: starting empty beside an unreadable backup would hide the problem.
restore_from() {
  NODE_ID="$1" "$LITESTREAM_BIN" restore -config "$CONFIG" -if-replica-exists "$DATABASE_PATH" \
    || fail "could not read the backup at $REPLICA_URL/$1 (see Litestream's message above); not starting"
}

# Litestream's shadow folder: its `generation` file names the generation this folder writes.
readonly META_DIR="$DATA_DIR/.$(basename -- "$DATABASE_PATH")-litestream"

# One writer per backup path: refuses to start when the latest generation at REPLICA_URL/NODE_ID
# was written by another live node (another machine or NODE_NAME, or another database on this
# one). Fast path, no node process: this folder's Litestream wrote that generation itself (it is
# the newest by `end`, whole seconds, ties included). Otherwise the node reads the writer the
# generation records, and records this node in DATABASE_PATH (creating it when missing) before
# Litestream starts: the first snapshot of an empty path already names its writer.
check_single_writer() {
  local listing mine
  listing=$(generations 2>/dev/null) || fail "could not list the generations at $REPLICA_URL/$NODE_ID; not starting"
  mine=$(cat -- "$META_DIR/generation" 2>/dev/null || true)
  if [ -n "$mine" ] && printf '%s\n' "$listing" | awk -v mine="$mine" '
      NR > 1 && NF >= 5 { if ($5 > latest) latest = $5; if ($2 == mine) end = $5 }
      END { exit !(end != "" && end == latest) }'; then
    return 0
  fi
  if [ -z "$(printf '%s\n' "$listing" | awk 'NR > 1 && NF >= 5')" ]; then
    say "no generation at $REPLICA_URL/$NODE_ID yet: recording this node in $DATABASE_PATH as its writer"
  else
    say "checking who wrote the latest generation at $REPLICA_URL/$NODE_ID (one writer per backup path)"
  fi
  local status=0 check_args=()
  # Restored from this very path at this start: the file is that generation, read it directly.
  [ -z "$seeded_from_own" ] || check_args=(--restored)
  "$NODE_BIN" "$MAIN" check-backup-writer "${check_args[@]}" || status=$?
  [ "$status" = 0 ] && return 0
  if [ -n "$seeded" ]; then
    say "removing $DATABASE_PATH, seeded at this start: leaving the folder as it was"
    # Litestream restores into DATABASE_PATH.tmp and renames it, leaving that file's -wal/-shm.
    rm -f -- "$DATABASE_PATH" "$DATABASE_PATH-wal" "$DATABASE_PATH-shm" "$DATABASE_PATH.tmp-wal" "$DATABASE_PATH.tmp-shm"
  fi
  [ "$status" = "$EXIT_OTHER_WRITER" ] && exit "$EXIT_OTHER_WRITER"
  fail "could not check who writes $REPLICA_URL/$NODE_ID (see above); not starting"
}

# Scratch folders of this database's own recover and check-backup-writer runs (full copies of a
# database each) outlive a SIGKILL of the start that made them: none is in use before this start
# runs either, so remove every one.
shopt -s nullglob
for scratch in "$DATA_DIR/.recover-$(basename -- "$DATABASE_PATH")-"* "$DATA_DIR/.backup-writer-$(basename -- "$DATABASE_PATH")-"*; do
  if [ -d "$scratch" ]; then
    say "removing $scratch, a scratch folder left by an earlier start that was killed"
    rm -rf -- "$scratch"
  fi
done
shopt -u nullglob

seeded=
seeded_from_own=
say "backup of $DATABASE_PATH: $REPLICA_URL/$NODE_ID, synced every $LITESTREAM_SYNC_INTERVAL"
if [ -e "$DATABASE_PATH" ]; then
  say "$DATABASE_PATH exists: not restoring"
else
  # A WAL without its database is worthless, and SQLite would replay it onto a restored file.
  # Litestream's shadow folder describes the lost file too.
  meta_dir=$META_DIR
  for leftover in "$DATABASE_PATH-wal" "$DATABASE_PATH-shm" "$meta_dir"; do
    if [ -e "$leftover" ]; then
      say "removing $leftover, left over from a database that is gone"
      rm -rf -- "$leftover"
    fi
  done

  if [ "$RESTORE_FROM" = all ] || [[ "$RESTORE_FROM" == *,* ]]; then
    from_args=()
    [ "$RESTORE_FROM" = all ] || from_args=(--from "$RESTORE_FROM")
    [ -z "$RESTORE_TIMESTAMP" ] || from_args+=(--timestamp "$RESTORE_TIMESTAMP")
    say "$DATABASE_PATH is missing; RESTORE_FROM=$RESTORE_FROM: seeding it from the union of the backups under $REPLICA_URL${RESTORE_TIMESTAMP:+ as of $RESTORE_TIMESTAMP}"
    status=0
    "$NODE_BIN" "$MAIN" recover --output "$DATABASE_PATH" "${from_args[@]}" || status=$?
    if [ "$status" = 0 ]; then
      say "seeded $DATABASE_PATH from the union; the node will mint a new replica id and heal from peers"
    elif [ "$status" = "$RECOVER_NO_BACKUPS" ]; then
      say "no backup under $REPLICA_URL; starting empty, will bootstrap from peers"
    else
      rm -f -- "$DATABASE_PATH"
      fail "could not make the union of the backups under $REPLICA_URL (see above); not starting"
    fi
  else
    say "$DATABASE_PATH is missing: looking for a backup at $REPLICA_URL/$NODE_ID"
    restore_from "$NODE_ID"
    if [ -e "$DATABASE_PATH" ]; then
      seeded_from_own=yes
      say "restored $DATABASE_PATH from $REPLICA_URL/$NODE_ID; the node will mint a new replica id and heal from peers"
    elif [ -n "$RESTORE_FROM" ] && [ "$RESTORE_FROM" != "$NODE_ID" ]; then
      say "no backup of its own; RESTORE_FROM=$RESTORE_FROM: looking for a backup at $REPLICA_URL/$RESTORE_FROM"
      restore_from "$RESTORE_FROM"
      if [ -e "$DATABASE_PATH" ]; then
        say "restored $DATABASE_PATH from $REPLICA_URL/$RESTORE_FROM; the node will mint a new replica id and heal from peers"
      else
        say "no backup at $REPLICA_URL/$RESTORE_FROM either; starting empty, will bootstrap from peers"
      fi
    else
      [ -z "$RESTORE_FROM" ] || say "RESTORE_FROM=$RESTORE_FROM is this node's own backup name: nothing else to look at"
      say "no backup; starting empty, will bootstrap from peers"
    fi
  fi
  if [ -e "$DATABASE_PATH" ]; then seeded=yes; fi
fi

check_single_writer

# Starting empty, the check above created the file (with the writer in it), so Litestream's first
# look (monitor-interval in litestream.yml) finds a database at once instead of after the node has
# created it, by which time the node may have counted views that a stop right then would not ship.
[ -e "$DATABASE_PATH" ] || fail "$DATABASE_PATH was not created by the writer check; not starting"

say "starting the node under litestream replicate (LITESTREAM=1: Litestream owns checkpoints; the node migrates $DATABASE_PATH as it opens it)"
export LITESTREAM=1
exec "$LITESTREAM_BIN" replicate -config "$CONFIG" -exec "\"$NODE_BIN\" \"$MAIN\""
