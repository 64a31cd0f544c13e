#!/usr/bin/env bash
# Creates (or reuses) the Python venv that the Buildbot integration tests run the master and
# worker from, with tests/python-requirements.txt installed, and prints the venv's path on
# stdout (progress goes to stderr).
#
#   venv:  ${AUTOLAND_VENV:-<repo>/target/venv}
#   stamp: <venv>/.autoland-requirements.sha256, the hash of the requirements file and of the
#          Python version; when it matches, nothing is installed again (about 0.1 s).
#
# When the requirements change, the venv is made anew (about 20 s, ~150 MB). Python:
# ${PYTHON:-python3}, 3.9 or later. Safe to run from several processes at once (flock).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${AUTOLAND_VENV:-$repo/target/venv}"
requirements="$repo/tests/python-requirements.txt"
python="${PYTHON:-python3}"

log() { echo "python-env: $*" >&2; }

command -v "$python" >/dev/null 2>&1 || { log "no $python on PATH"; exit 1; }
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || {
  log "$python is $("$python" --version 2>&1); Buildbot 4.3 needs Python 3.9 or later"
  exit 1
}
# Debian's python3 comes without venv/ensurepip (package python3-venv).
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing python3-venv"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  else
    log "$python has no venv module: install python3-venv"
    exit 1
  fi
fi

want="$( (sha256sum "$requirements" | cut -d' ' -f1; "$python" --version 2>&1) | sha256sum | cut -d' ' -f1)"
stamp="$venv/.autoland-requirements.sha256"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi

if [ -e "$venv" ]; then
  if [ -f "$venv/pyvenv.cfg" ]; then
    log "requirements changed or last install incomplete: making $venv anew"
    rm -rf "$venv"
  else
    log "$venv exists and is not a venv: refusing to touch it"
    exit 1
  fi
fi

log "creating $venv"
"$python" -m venv "$venv"
log "installing $(grep -c '==' "$requirements") pinned packages"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  -r "$requirements" >&2
# The master refuses to start without buildbot-www; check that everything imports.
"$venv/bin/python" -c 'import buildbot, buildbot_worker, buildbot_www, thclient, sqlite3' || {
  log "installed packages do not import"
  exit 1
}
echo "$want" >"$stamp"
echo "$venv"
