#!/usr/bin/env bash
# What the status-page test renders and reads with: Debian's headless Chromium and the
# tesseract OCR engine (to read the key texts back from the screenshot). Installed from the
# Debian archive when missing (CI runs as root on a fresh Debian machine); a no-op when both
# are there. Usage: scripts/fetch-browser.sh
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr tesseract-ocr-eng)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "fetch-browser: ${need[*]} missing, and installing them needs root (or sudo)" >&2
        exit 1
    fi
fi
echo "fetch-browser: installing ${need[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
${SUDO:-} apt-get update -qq
${SUDO:-} apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
command -v chromium >/dev/null && command -v tesseract >/dev/null || {
    echo "fetch-browser: chromium or tesseract still missing after apt-get install" >&2
    exit 1
}
