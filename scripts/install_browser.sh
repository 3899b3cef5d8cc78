#!/usr/bin/env bash
# Debian's Chromium for the end-to-end dashboard test (Playwright drives it; we never
# let Playwright download a browser of its own).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "chromium not found and cannot be installed here; the browser test will be skipped" >&2
fi
