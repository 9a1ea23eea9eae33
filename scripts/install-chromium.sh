#!/bin/sh
# Installs Debian's chromium for tests/test_web.py (a real headless browser driven by Playwright).
# Playwright is told to use /usr/bin/chromium and never downloads a browser of its own.
#
# As root with apt-get, a missing chromium is installed; otherwise the script says so and succeeds:
# tests/test_web.py then skips, except under CI=true, where a missing browser fails the test.
set -u
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "facerec: installing Debian's chromium for the web page's browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && exit 0
fi
echo "facerec: WARNING: no chromium (install Debian's chromium package as root); tests/test_web.py will skip" >&2
