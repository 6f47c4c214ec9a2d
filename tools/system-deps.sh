#!/usr/bin/env bash
# Installs the system packages the test-suite uses, when this machine lets us (root + apt-get).
# bubblewrap, setpriv, libseccomp: sandbox layer 2. redis-server: the ARQ scale-out tests. postgresql: the
# run store's PostgreSQL backend (initdb + pg_ctl in a temporary directory). Missing ones make the
# tests that need them skip with the reason; nothing here is fatal.
set -u
want=()
command -v bwrap >/dev/null 2>&1 || want+=(bubblewrap)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v setpriv >/dev/null 2>&1 || want+=(util-linux)  # setpriv: drops root inside bwrap
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || want+=(libseccomp2)  # the seccomp filter
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || want+=(postgresql)  # the PostgreSQL run store's tests start their own server
command -v chromium >/dev/null 2>&1 || want+=(chromium)  # the dashboard's browser test (Playwright drives it)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: ${want[*]} missing and cannot be installed here (need root and apt-get); dependent tests will skip" >&2
    exit 0
fi
echo "==> installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${want[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${want[@]}" >/dev/null 2>&1; } \
    || echo "system-deps: could not install ${want[*]}; dependent tests will skip" >&2
exit 0
