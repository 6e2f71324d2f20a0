#!/usr/bin/env bash
# Install monitor as a system service: a virtualenv in /opt/monitor, config in /etc/monitor,
# state in /var/lib/monitor, and the systemd unit. Run as root from a checkout of the repo.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
id monitor >/dev/null 2>&1 || useradd --system --home /var/lib/monitor --shell /usr/sbin/nologin monitor
install -d -o root -g root /opt/monitor
python3 -m venv /opt/monitor/.venv
/opt/monitor/.venv/bin/pip install --quiet "$src"
install -m 0644 "$src/README.md" /opt/monitor/README.md
install -d -m 0750 -o root -g monitor /etc/monitor
for f in "$src"/config/*.yaml; do
    [ -e "/etc/monitor/$(basename "$f")" ] || install -m 0640 -o root -g monitor "$f" /etc/monitor/
done
install -d -m 0750 -o monitor -g monitor /var/lib/monitor
install -m 0644 "$src/monitor.service" /etc/systemd/system/monitor.service
systemctl daemon-reload
echo "Installed. Edit /etc/monitor/*.yaml, then: systemctl enable --now monitor"
