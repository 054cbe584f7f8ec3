#!/usr/bin/env bash
# Best effort: install Debian's chromium for the browser test of `spikeforge report` (tests/test_report_browser.py).
# Never fails the build: without a browser that test is skipped and says why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: not root or no apt-get; the browser test will be skipped"
  exit 0
fi
echo "ensure_chromium: installing Debian's chromium for the report browser test"
export DEBIAN_FRONTEND=noninteractive
timeout 300 apt-get update -qq >/dev/null 2>&1 || true
timeout 600 apt-get install -y -qq chromium >/dev/null 2>&1 \
  || echo "ensure_chromium: apt-get install chromium failed; the browser test will be skipped"
exit 0
