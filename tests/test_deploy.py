"""deploy/install.sh and uninstall.sh into a scratch root (ROOT=...), with systemctl replaced by
a recorder: what they install, enable and keep. The package is installed without its
dependencies to keep this quick; the units themselves are checked in test_service.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parent.parent


def deploy(script: str, root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    calls = root / "systemctl.log"
    recorder = root / "systemctl"
    if not recorder.exists():
        root.mkdir(parents=True, exist_ok=True)
        recorder.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
        recorder.chmod(0o755)
    before = calls.read_text() if calls.exists() else ""
    env = {
        **os.environ,
        "ROOT": str(root),
        "SYSTEMCTL": str(recorder),
        "PIP_ARGS": "--no-deps",
    }
    done = subprocess.run(
        ["bash", str(ROOT_DIR / "deploy" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, calls.read_text()[len(before) :]


def test_install_keeps_edited_config_enables_the_unit_and_uninstall_keeps_the_data(tmp_path):
    root = tmp_path / "root"
    _, calls = deploy("install.sh", root)
    etc = root / "etc" / "monitor"
    shipped = sorted(p.name for p in (ROOT_DIR / "config").glob("*.yaml"))
    assert sorted(p.name for p in etc.glob("*.yaml")) == shipped
    assert oct((etc / "feeds.yaml").stat().st_mode & 0o777) == "0o640"
    assert (etc / "monitor.env").exists()
    assert (etc / "monitor.env").stat().st_mode & 0o777 == 0o600  # secrets: owner only
    assert (root / "opt/monitor/.venv/bin/monitor").exists()
    units = root / "etc/systemd/system"
    assert (units / "monitor.service").read_text() == (ROOT_DIR / "monitor.service").read_text()
    assert (units / "monitor@.service").exists()
    assert calls.splitlines() == ["daemon-reload", "enable monitor.service"]

    # The user edits their config and secrets; installing again (an upgrade) keeps both.
    (etc / "feeds.yaml").write_text("outlets: {}\n")
    (etc / "monitor.env").write_text("DB_PASSWORD=mine\n")
    done, calls = deploy("install.sh", root, "--workers", "2", "--now")
    assert (etc / "feeds.yaml").read_text() == "outlets: {}\n"
    assert (etc / "feeds.yaml.dist").read_text() == (ROOT_DIR / "config/feeds.yaml").read_text()
    assert (etc / "monitor.env").read_text() == "DB_PASSWORD=mine\n"
    assert "feeds.yaml: yours kept" in done.stdout
    assert not (etc / "watches.yaml.dist").exists()  # unchanged files get no .dist
    workers = "monitor-workers.target monitor@1.service monitor@2.service"
    assert calls.splitlines() == [
        "daemon-reload",
        "disable monitor.service",
        f"enable {workers}",
        f"restart {workers}",
    ]

    (root / "var/lib/monitor").mkdir(parents=True)
    (root / "var/lib/monitor/monitor.db").write_text("data")
    done, calls = deploy("uninstall.sh", root)
    assert not (root / "opt/monitor").exists() and not (units / "monitor.service").exists()
    assert (etc / "feeds.yaml").exists() and (root / "var/lib/monitor/monitor.db").exists()
    assert calls.splitlines()[0].startswith("disable --now monitor.service")
    deploy("uninstall.sh", root, "--purge")
    assert not etc.exists() and not (root / "var/lib/monitor").exists()
