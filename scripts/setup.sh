#!/usr/bin/env bash
# Creates or refreshes the project's Python 3.12 venv (.venv) and the system packages it needs; reuses what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: FFmpeg for torchcodec's fast video decoding, EGL/Mesa for MuJoCo's offscreen rendering,
# Chromium for the HTML report test.
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
ldconfig -p | grep -q 'libEGL_mesa.so' || need+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Python 3.12: lerobot >= 0.5 uses 3.12-only syntax. PYTHON overrides; otherwise PATH, then pyenv's versions.
find_python() {
  local c
  for c in "${PYTHON:-}" python3.12 $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.12*/bin/python3.12 2>/dev/null); do
    [ -n "$c" ] || continue
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  py=$(find_python) || { echo "setup: error: Python 3.12 not found; install it (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12" >&2; exit 1; }
  echo "setup: creating .venv with $py"
  rm -rf .venv
  "$py" -m venv .venv
fi

# Install the project (editable, with the test extra) only when pyproject.toml changed since the last install.
stamp=.venv/.curate-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the project into .venv (first time: several minutes, about 2 GB of downloads)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
  .venv/bin/python -m pip install -q -e '.[test,ray]' 2>&1 | grep -v 'is ignored' || true
  .venv/bin/python -c 'import curate, lerobot, metaworld, mujoco, torchcodec' || { echo "setup: error: the install did not complete; see the pip output above" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
