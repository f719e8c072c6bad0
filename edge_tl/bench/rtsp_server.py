"""A real RTSP server on 127.0.0.1 (Debian's gst-rtsp-server) for stream tests and benchmarks
without cameras. Debian's GStreamer bindings live in the system interpreter, not in a venv, so
the server runs as a `/usr/bin/python3` subprocess; kill it to simulate a camera outage."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["rtsp_server_available", "start_rtsp_server", "test_pattern_launch", "SYSTEM_PYTHON"]

SYSTEM_PYTHON = Path("/usr/bin/python3")

_SERVER = """
import json, sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer(); server.set_address("127.0.0.1"); server.set_service(sys.argv[1])
for mount, launch in json.loads(sys.argv[2]).items():
    factory = GstRtspServer.RTSPMediaFactory(); factory.set_shared(True); factory.set_launch(launch)
    server.get_mount_points().add_factory(mount, factory)
server.attach(None); print("ready", flush=True); GLib.MainLoop().run()
"""


def test_pattern_launch(
    pattern: str = "ball", width: int = 320, height: int = 240, fps: int = 15
) -> str:
    """A live H.264 test-pattern stream (needs gstreamer1.0-plugins-ugly for x264enc)."""
    return (
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def rtsp_server_available() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'
    return subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True).returncode == 0


def start_rtsp_server(port: int, mounts: dict[str, str]) -> subprocess.Popen[str]:
    """Serve each `mount → launch string` on rtsp://127.0.0.1:PORT/mount; returns once ready."""
    import json

    process = subprocess.Popen(
        [str(SYSTEM_PYTHON), "-c", _SERVER, str(port), json.dumps(mounts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"gst-rtsp-server did not start on port {port}")
    return process
