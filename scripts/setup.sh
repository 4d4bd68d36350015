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
    # Without root: unpack the data packages into .debian-root/ (mmr/config.py looks there).
    # apt-get download and dpkg -x need no privileges; libraries such as libcairo2 cannot be
    # unpacked this way and must come from an administrator (SVG-only stamps are skipped without it).
    echo ">> not root: unpacking ${missing[*]} into .debian-root/"
    mkdir -p .debian-root/.debs
    for pkg in "${missing[@]}"; do
      [[ -e .debian-root/.debs/$pkg.unpacked ]] && continue
      case "$pkg" in
        lib*|chromium|fonts-*) echo "!! $pkg needs root: ask an administrator to run: sudo apt-get install $pkg" >&2 ;;
        *) (cd .debian-root/.debs && apt-get download -qq "$pkg") && dpkg -x .debian-root/.debs/"$pkg"_*.deb .debian-root \
             && touch .debian-root/.debs/"$pkg".unpacked ;;
      esac
    done
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
