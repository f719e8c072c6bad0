"""Swapping the model of a running daemon: no frame lost, no stream restarted; a tampered or
incompatible bundle refused while the old one keeps serving."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest

from edge_tl.bundle import Bundle, stage_bundle
from edge_tl.runtime.config import load_config
from edge_tl.runtime.daemon import Daemon, _stop_on_signals
from tests.runtime.test_stream_runtime import make_traffic_clip

pytestmark = pytest.mark.slow


def _one_camera_daemon(bundle: Path, tmp_path: Path) -> Daemon:
    """A daemon serving `bundle` to one realtime clip, metrics on a free port (not started)."""
    clip = tmp_path / "cam.mp4"
    make_traffic_clip(clip, ["disc"] * 6)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{bundle}"\nmetrics_port = 0\n'
        f'[[streams]]\nname = "cam"\nsource = "{clip}"\nmode = "frame"\nrealtime = true\n'
    )
    return Daemon(load_config(config))


def _frames(path: Path) -> int:
    return int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_reload_under_load_loses_no_frame(exported_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported_bundle, bundle)
    clips = []
    for i in range(4):
        clip = tmp_path / f"cam{i}.mp4"
        make_traffic_clip(clip, ["disc", "stripes", "checker"] * 2, seed=i)
        clips.append(clip)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{bundle}"\nmetrics_port = 0\nmetrics_host = "127.0.0.1"\n'
        + "".join(
            f'[[streams]]\nname = "cam{i}"\nsource = "{c}"\nmode = "frame"\nrealtime = true\n'
            for i, c in enumerate(clips)
        )
    )
    daemon = Daemon(load_config(config))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert _wait(lambda: all(daemon.frames.get(f"cam{i}", 0) > 10 for i in range(4)), 20)
        before = daemon.health()["bundle"]["sha256"]
        with stage_bundle(bundle, base=Bundle.load(bundle)) as stage:  # a new version in place
            stage.manifest.name = "retrained"
        port = daemon._http.server_address[1]  # type: ignore[union-attr]
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        answer = json.loads(local.open(urllib.request.Request(
            f"http://127.0.0.1:{port}/reload", method="POST")).read())  # fmt: skip
        assert answer["ok"] is True
        assert daemon.bundle.manifest.name == "retrained"
        after = json.loads(local.open(f"http://127.0.0.1:{port}/healthz").read())["bundle"][
            "sha256"
        ]
        assert after != before
        frames_at_swap = dict(daemon.frames)
        assert all(n < _frames(c) for n, c in zip(frames_at_swap.values(), clips, strict=True))
        runner.join(timeout=60)  # the clips end: every stream ran through the swap
    finally:
        daemon.stop()
        runner.join(timeout=20)
    assert daemon.frames == {f"cam{i}": _frames(c) for i, c in enumerate(clips)}  # none lost
    assert 'edge_tl_reloads_total{result="ok"} 1.0' in daemon.metrics.exposition().decode()


def test_tampered_or_incompatible_bundles_are_refused(
    exported_bundle: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported_bundle, bundle)
    daemon = _one_camera_daemon(bundle, tmp_path)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert _wait(lambda: daemon.frames.get("cam", 0) > 5, 20)
        serving = daemon.health()["bundle"]["sha256"]
        onnx = bundle / "fp32.onnx"
        onnx.write_bytes(onnx.read_bytes()[:-1] + b"X")  # same size, other content
        ok, message = daemon.reload()
        assert not ok and "sha256 differs" in message and serving[:12] in message
        assert daemon.health()["bundle"]["sha256"] == serving
        shutil.rmtree(bundle)
        shutil.copytree(exported_bundle, bundle)
        with stage_bundle(bundle, base=Bundle.load(bundle)) as stage:
            stage.manifest.labels = list(reversed(stage.manifest.labels))
        ok, message = daemon.reload()
        assert not ok and "differ from the serving bundle's" in message
        frames = daemon.frames["cam"]
        assert _wait(lambda: daemon.frames["cam"] > frames, 10)  # still serving
    finally:
        daemon.stop()
        runner.join(timeout=20)
    text = daemon.metrics.exposition().decode()
    assert 'edge_tl_reloads_total{result="refused"} 2.0' in text


def test_sighup_reloads(exported_bundle: Path, tmp_path: Path) -> None:
    daemon = _one_camera_daemon(exported_bundle, tmp_path)
    with _stop_on_signals(daemon):
        runner = threading.Thread(target=daemon.run, daemon=True)
        runner.start()
        try:
            assert _wait(lambda: daemon.frames.get("cam", 0) > 3, 20)
            signal.raise_signal(signal.SIGHUP)
            assert _wait(
                lambda: b'reloads_total{result="ok"} 1.0' in daemon.metrics.exposition(), 20
            )
        finally:
            daemon.stop()
            runner.join(timeout=20)


def test_reload_endpoint_takes_post_reload_from_localhost_only() -> None:
    from edge_tl.runtime.prometheus import DaemonMetrics, serve_http

    calls: list[int] = []

    def reload() -> tuple[bool, str]:
        calls.append(1)
        return True, "ok"

    server = serve_http("0.0.0.0", 0, DaemonMetrics(), lambda: {"ok": True}, reload)
    try:
        port = server.server_address[1]
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as wrong:
            local.open(urllib.request.Request(f"http://127.0.0.1:{port}/nothing", method="POST"))
        assert wrong.value.code == 404 and not calls
        local.open(urllib.request.Request(f"http://127.0.0.1:{port}/reload", method="POST"))
        assert calls == [1]
        address = _own_address()
        if address is None:
            pytest.skip("no non-loopback address to call from")
        with pytest.raises(urllib.error.HTTPError) as remote:
            local.open(urllib.request.Request(f"http://{address}:{port}/reload", method="POST"))
        assert remote.value.code == 403 and calls == [1]
    finally:
        server.shutdown()


def _own_address() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address
