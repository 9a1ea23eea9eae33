#!/bin/sh
# Installs Debian's PostgreSQL server programs for the tests on PostgreSQL (tests/conftest.py starts a
# private cluster with initdb and pg_ctl; tests/support/pgcluster.py finds them on PATH or in /usr/lib/postgresql).
#
# As root with apt-get, missing programs are installed; otherwise the script says so and succeeds: the
# PostgreSQL tests then skip, except under CI=true, where they fail.
set -u
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "facerec: installing Debian's postgresql-15 for the tests on PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null && exit 0
fi
echo "facerec: WARNING: no PostgreSQL (install Debian's postgresql-15 as root); its tests will skip" >&2
