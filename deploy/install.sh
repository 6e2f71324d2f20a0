#!/usr/bin/env bash
# Install monitor as a systemd service. Run as root from a checkout of the repository:
#
#   deploy/install.sh               the code in /opt/monitor/.venv, the example config in
#                                   /etc/monitor, monitor.service installed and enabled
#   deploy/install.sh --now         ...and (re)started at once
#   deploy/install.sh --workers 3   monitor@1..3.service (several workers on one PostgreSQL
#                                   database) enabled instead of monitor.service
#
# Running it again upgrades the code and the units. It never overwrites your config: when the
# shipped example of a file you have changed is newer, it is put beside it as FILE.dist.
# ROOT=/some/dir installs under that directory instead of / (packaging, tests); SYSTEMCTL=...
# replaces systemctl; PIP_ARGS are added to pip install.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${ROOT:-}"
SYSTEMCTL="${SYSTEMCTL:-systemctl}"
read -r -a pip_args <<<"${PIP_ARGS:-}"
workers=0
now=0
while [ $# -gt 0 ]; do
    case "$1" in
        --now) now=1 ;;
        --workers) workers="${2:?--workers needs a number}"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$workers" in ''|*[!0-9]*) echo "install.sh: --workers wants a number" >&2; exit 2 ;; esac

opt="$ROOT/opt/monitor"
etc="$ROOT/etc/monitor"
units="$ROOT/etc/systemd/system"

if [ -z "$ROOT" ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: run as root (or set ROOT=dir)" >&2; exit 1; }
    # The service's user: no login, no home of its own (systemd makes /var/lib/monitor).
    id monitor >/dev/null 2>&1 ||
        useradd --system --home-dir /var/lib/monitor --no-create-home \
            --shell /usr/sbin/nologin monitor
    group=monitor
else
    group="$(id -gn)"
fi

echo "== code: $opt/.venv"
install -d -m 0755 "$opt"
[ -x "$opt/.venv/bin/python" ] || python3 -m venv "$opt/.venv"
"$opt/.venv/bin/python" -m pip install --quiet --upgrade "${pip_args[@]}" "$src"

echo "== config: $etc"
install -d -m 0755 "$etc"
for example in "$src"/config/*.yaml; do
    name="$(basename "$example")"
    if [ ! -e "$etc/$name" ]; then
        install -m 0640 -g "$group" "$example" "$etc/$name"
        echo "   $name: installed"
    elif cmp -s "$example" "$etc/$name"; then
        echo "   $name: unchanged"
    else
        install -m 0640 -g "$group" "$example" "$etc/$name.dist"
        echo "   $name: yours kept; the shipped example is $name.dist"
    fi
done
if [ ! -e "$etc/monitor.env" ]; then
    # Secrets for ${VAR} in the YAML files. Owner-only: systemd reads an EnvironmentFile= as
    # root before it starts the service, so the service user never needs to read it.
    install -m 0600 /dev/null "$etc/monitor.env"
    cat >"$etc/monitor.env" <<'EOF'
# Environment of the monitor service (systemd EnvironmentFile=): secrets used in the YAML files
# as ${NAME}, e.g. database: postgresql+psycopg://monitor:${DB_PASSWORD}@127.0.0.1/monitor
#DB_PASSWORD=
#SLACK_WEBHOOK=
EOF
    echo "   monitor.env: created (mode 0600, root only) for secrets"
fi

echo "== units: $units"
install -d -m 0755 "$units"
install -m 0644 "$src/monitor.service" "$units/monitor.service"
install -m 0644 "$src/deploy/monitor@.service" "$units/monitor@.service"
install -m 0644 "$src/deploy/monitor-workers.target" "$units/monitor-workers.target"
"$SYSTEMCTL" daemon-reload
if [ "$workers" -gt 0 ]; then
    names=()
    for i in $(seq 1 "$workers"); do names+=("monitor@$i.service"); done
    "$SYSTEMCTL" disable monitor.service 2>/dev/null || true
    "$SYSTEMCTL" enable monitor-workers.target "${names[@]}"
    [ "$now" = 1 ] && "$SYSTEMCTL" restart monitor-workers.target "${names[@]}"
else
    "$SYSTEMCTL" enable monitor.service
    [ "$now" = 1 ] && "$SYSTEMCTL" restart monitor.service
fi

echo "== checking the configuration"
if ! "$opt/.venv/bin/monitor" --config "$etc" check; then
    echo "install.sh: fix the configuration above before starting the service" >&2
fi
if [ "$now" = 0 ]; then
    echo "Installed. Edit $etc/*.yaml (secrets in $etc/monitor.env), run"
    echo "  $opt/.venv/bin/monitor --config $etc check"
    if [ "$workers" -gt 0 ]; then
        echo "then: systemctl start monitor-workers.target"
    else
        echo "then: systemctl start monitor"
    fi
fi
