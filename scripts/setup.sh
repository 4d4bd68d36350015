#!/usr/bin/env bash
# Install what is missing on a Debian machine, then build the default indexes.
#   scripts/setup.sh          runtime: Debian data packages, .venv, pinned requirements, index_store/
#   scripts/setup.sh --test   also the test tools: Chromium (Debian) and requirements-dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
[[ "${1:-}" == "--test" ]] && WITH_TESTS=1
PYTHON="${PYTHON:-python3}"
DEBIAN_PACKAGES=(tuxpaint-stamps-default wordnet-base openclipart-svg libcairo2)
[[ $WITH_TESTS == 1 ]] && DEBIAN_PACKAGES+=(chromium fonts-dejavu-core)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    echo ">> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "!! missing Debian packages: ${missing[*]}" >&2
    echo "!! ask an administrator to run: sudo apt-get install ${missing[*]}" >&2
    echo "!! or point mmr at copies of the data (see README, 'Without root')" >&2
    exit 1
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  echo ">> creating .venv"
  "$PYTHON" -m venv .venv
fi
# torch first, pinned: its CPU wheel is local; anything unpinned would pull GBs of CUDA packages.
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
if [[ $WITH_TESTS == 1 ]]; then
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
fi

echo ">> building corpora and indexes (skips what index_store/ already has)"
HF_HUB_OFFLINE=1 .venv/bin/python -m mmr build
