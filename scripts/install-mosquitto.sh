#!/bin/sh
# Installs Debian's mosquitto broker for the MQTT tests (tests/support/mosquitto.py starts a private one
# on a free port; the system's service is not used).
#
# As root with apt-get, a missing mosquitto is installed; otherwise the script says so and succeeds: the
# MQTT tests then skip, except under CI=true, where they fail.
set -u
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "facerec: installing Debian's mosquitto for the MQTT tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null && exit 0
fi
echo "facerec: WARNING: no mosquitto (install Debian's mosquitto as root); the MQTT tests will skip" >&2
