#!/bin/sh
# Installs Debian's Firefox (firefox-esr) for the call page's Firefox test (tests/test_webrtc.py), which
# drives it over WebDriver BiDi, built into Firefox: no geckodriver and no Playwright Firefox is needed.
#
# As root with apt-get, a missing Firefox is installed; otherwise the script says so and succeeds: the
# Firefox test then skips, except under CI=true, where a missing browser fails the test.
set -u
if command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "facerec: installing Debian's firefox-esr for the call page's Firefox test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr >/dev/null && exit 0
fi
echo "facerec: WARNING: no firefox (install Debian's firefox-esr package as root); the Firefox call test will skip" >&2
