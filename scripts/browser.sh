#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver (chromium, chromium-driver) where they are missing, for
# tests/test_report_browser.py; no browser can be downloaded by the test itself. Idempotent: with both present it
# only checks. Exit status 3: they are missing and cannot be installed here (no apt-get, or not root and no sudo).
set -euo pipefail
PACKAGES=(chromium chromium-driver)

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "browser: chromium/chromedriver are not installed and there is no apt-get" >&2
  exit 3
fi
sudo_=""
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || { echo "browser: installing ${PACKAGES[*]} needs root or sudo" >&2; exit 3; }
  sudo_="sudo -n"
fi
echo "browser: installing ${PACKAGES[*]} with apt-get"
apt=(apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}")
$sudo_ "${apt[@]}" >/dev/null || { $sudo_ apt-get update -qq >/dev/null && $sudo_ "${apt[@]}" >/dev/null; }
