"""A real MQTT broker on 127.0.0.1 (Debian's `mosquitto`) for tests and benchmarks: persistent
sessions on disk, so a broker restarted with SIGTERM keeps its subscribers' queued messages,
as a production broker is configured."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from edge_tl.errors import EdgeTLError

__all__ = ["mosquitto_path", "start_mosquitto"]


def mosquitto_path() -> Path | None:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if Path(p).is_file()), None
    )
    return Path(found) if found else None


def start_mosquitto(port: int, folder: Path, timeout_s: float = 10.0) -> subprocess.Popen[bytes]:
    """Start mosquitto on 127.0.0.1:`port` with its persistence in `folder`; returns when it
    accepts connections. Start it again with the same folder to simulate a broker restart."""
    binary = mosquitto_path()
    if binary is None:
        raise EdgeTLError("no mosquitto binary (apt-get install mosquitto)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"user {getpass.getuser()}\n"  # as root it would switch to `mosquitto`: folder unwritable
        "persistence true\n"
        f"persistence_location {folder}/\n"
        "max_queued_messages 0\n"  # 0: no limit on a persistent subscriber's queue
        "max_inflight_messages 0\n"
    )
    log = open(folder / "mosquitto.log", "ab")  # noqa: SIM115  (kept open by the child)
    process = subprocess.Popen([str(binary), "-c", str(config)], stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    tail = (folder / "mosquitto.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise EdgeTLError(f"mosquitto did not start on port {port}: {' | '.join(tail)}")
