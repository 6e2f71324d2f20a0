#!/usr/bin/env bash
# Remove the monitor service installed by deploy/install.sh: stop and disable its units, remove
# them and the code in /opt/monitor. The config (/etc/monitor) and the database
# (/var/lib/monitor) stay unless --purge is given, which also removes the `monitor` user.
# ROOT and SYSTEMCTL work as in install.sh.
set -euo pipefail

ROOT="${ROOT:-}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
purge=0
case "${1:-}" in
    --purge) purge=1 ;;
    "") ;;
    *) echo "uninstall.sh: unknown option $1 (--purge also removes config, data and user)" >&2
       exit 2 ;;
esac
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
    echo "uninstall.sh: run as root (or set ROOT=dir)" >&2
    exit 1
fi
units="$ROOT/etc/systemd/system"

# Every unit of ours that is enabled or running, the template's instances included.
"$SYSTEMCTL" disable --now monitor.service monitor-workers.target 'monitor@*.service' \
    2>/dev/null || true
rm -f "$units/monitor.service" "$units/monitor@.service" "$units/monitor-workers.target"
"$SYSTEMCTL" daemon-reload
rm -rf "$ROOT/opt/monitor"
if [ "$purge" = 1 ]; then
    rm -rf "$ROOT/etc/monitor" "$ROOT/var/lib/monitor" "$ROOT/var/lib/private/monitor"
    if [ -z "$ROOT" ] && id monitor >/dev/null 2>&1; then userdel monitor; fi
    echo "Removed monitor, its configuration, its database and its user."
else
    echo "Removed monitor. Kept $ROOT/etc/monitor and $ROOT/var/lib/monitor (--purge removes them)."
fi
