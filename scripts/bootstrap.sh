# Sourced by scripts/run and scripts/test: find Python 3.11+, make .venv, install
# the pinned requirements when they changed. Needs nothing but Python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LOCK=.bootstrap.lock  # git-ignored

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# ./scripts/run and ./scripts/test started together on a fresh clone would both make
# .venv and pip install into it at once. An exclusive flock(2) on the lock file makes
# the second wait for the first. Python takes it (flock(1) is not on every system) on
# descriptor 9, which this shell keeps open: the lock lasts until `exec 9>&-` below,
# or until the shell dies.
with_lock() {  # $1: python
  exec 9>>"$LOCK"
  "$1" -c 'import fcntl; fcntl.flock(9, fcntl.LOCK_EX)'
}

bootstrap() {  # $1: the requirements file to install
  local requirements=$1 stamp=.venv/.installed-$1 python
  python=$(find_python)
  with_lock "$python"
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
  fi
  exec 9>&-  # the lock goes with the last descriptor: not into pytest or the bot
}
