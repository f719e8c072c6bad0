"""`edge-tl export-triton` and the kserve remote backend against the real `tritonserver`
(the binary of the nvidia-pytriton wheel, python backend, started here on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_tl.bench.system import free_port
from edge_tl.bench.triton_server import find_tritonserver, start_tritonserver
from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import EdgeTLError
from edge_tl.images import find_images, load_image
from edge_tl.preprocess import preprocess
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.backends.kserve import RemoteUnavailable
from tests.conftest import run_cli

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed (edge-tl[remote])")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_tritonserver() is None,
        reason="no tritonserver unpacked (python -m edge_tl.bench.triton_server --install)",
    ),
]


class Server:
    def __init__(self, repo: Path) -> None:
        self.repo, self.http, self.grpc = repo, free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            self.process = start_tritonserver(self.repo, self.http, self.grpc)
        except EdgeTLError as exc:
            pytest.skip(f"tritonserver cannot start here: {exc}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="module")
def server(exported_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("triton") / "models"
    run_cli("export-triton", str(exported_bundle), str(repo), "--flavour", "python",
            "--precision", "fp32,int8", "--name", "shapes", "--queue-delay-us", "0")  # fmt: skip
    server = Server(repo)
    server.start()
    yield server
    server.stop()


def _images(bundle: Bundle, folder: Path) -> np.ndarray:
    return preprocess([load_image(p) for p in find_images([folder])], bundle.input_spec)


@pytest.mark.parametrize("scheme", ["kserve", "kserve+http"])
def test_remote_classifies_like_local(
    server: Server, exported_bundle: Path, tiny_dataset: Path, scheme: str
) -> None:
    bundle = Bundle.load(exported_bundle)
    batch = _images(bundle, tiny_dataset)
    port = server.grpc if scheme == "kserve" else server.http
    with (
        create_backend(bundle, f"{scheme}://127.0.0.1:{port}/shapes_fp32") as remote,
        create_backend(bundle, "onnxruntime") as local,
    ):
        remote_logits, local_logits = remote.infer(batch), local.infer(batch)
        single = remote.infer(batch[:1])
    assert (remote_logits.argmax(1) == local_logits.argmax(1)).all()
    np.testing.assert_allclose(remote_logits, local_logits, atol=1e-4)
    np.testing.assert_allclose(single, local_logits[:1], atol=1e-4)


def test_int8_model_matches_the_local_reference_path(
    server: Server, exported_bundle: Path, tiny_dataset: Path
) -> None:
    bundle = Bundle.load(exported_bundle)
    batch = _images(bundle, tiny_dataset)
    with (
        create_backend(bundle, f"kserve://127.0.0.1:{server.grpc}/shapes_int8") as remote,
        create_backend(bundle, "onnxruntime", Precision.INT8) as local,
    ):
        assert "reference Q/DQ" in local.describe()
        np.testing.assert_allclose(remote.infer(batch), local.infer(batch), atol=1e-4)


def test_open_checks_the_model(server: Server, exported_bundle: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    with pytest.raises(EdgeTLError, match="model 'nope' is not ready"):
        create_backend(bundle, f"kserve://127.0.0.1:{server.grpc}/nope").open()
    with pytest.raises(RemoteUnavailable, match="server not reachable"):
        create_backend(bundle, f"kserve://127.0.0.1:{free_port()}/shapes_fp32").open()


def test_server_going_away_is_a_state(server: Server, exported_bundle: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    backend = create_backend(bundle, f"kserve://127.0.0.1:{server.grpc}/shapes_fp32")
    backend.probe_initial_s = 0.2  # type: ignore[attr-defined]
    batch = backend.open().example_batch(1)
    try:
        backend.infer(batch)
        server.stop()
        with pytest.raises(RemoteUnavailable):
            backend.infer(batch)
        assert backend.down  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        with pytest.raises(RemoteUnavailable, match="down for"):
            backend.infer(batch)  # fails at once between probes: no stream waits on timeouts
        assert time.perf_counter() - t0 < 0.05
        server.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                backend.infer(batch)
                break
            except RemoteUnavailable:
                assert time.monotonic() < deadline, "backend never came back"
                time.sleep(0.1)
        assert not backend.down  # type: ignore[attr-defined]
    finally:
        backend.close()


def test_daemon_rides_out_a_server_restart(
    server: Server, exported_bundle: Path, tmp_path: Path
) -> None:
    """The daemon on the remote backend: the server going away is `remote_down` in /healthz,
    not a failed stream; when it is back, classifications resume without a restart."""
    from edge_tl.runtime.config import ServeConfig, StreamConfig
    from edge_tl.runtime.daemon import Daemon
    from tests.runtime.test_stream_runtime import make_traffic_clip

    clip = tmp_path / "road.mp4"
    make_traffic_clip(clip, ["disc", "stripes"])
    config = ServeConfig(
        bundle=exported_bundle,
        backend=f"kserve://127.0.0.1:{server.grpc}/shapes_fp32",
        metrics_port=None,
        events=tmp_path / "events.jsonl",
        streams=[
            StreamConfig(name="cam", source=str(clip), mode="frame", realtime=True, loop=True)
        ],
    )
    daemon = Daemon(config)
    daemon.backend.probe_initial_s = daemon.backend.probe_max_s = 0.3  # type: ignore[attr-defined]
    runner = threading.Thread(target=daemon.run)
    runner.start()

    def events() -> int:
        return len((tmp_path / "events.jsonl").read_text().splitlines())

    def until(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, daemon.health()
            time.sleep(0.1)

    try:
        until(lambda: (tmp_path / "events.jsonl").exists() and events() > 10)
        server.stop()
        until(lambda: daemon.health()["streams"]["cam"]["state"] == "remote_down")
        health = daemon.health()
        assert health["remote_down"] and health["streams"]["cam"]["error"] is None
        frames, before = health["streams"]["cam"]["frames"], events()
        until(lambda: daemon.health()["streams"]["cam"]["frames"] > frames + 10)  # still reading
        server.start()
        until(lambda: events() > before + 10)  # classified again, same daemon
        assert daemon.health()["streams"]["cam"]["state"] == "live"
        assert not daemon.health()["remote_down"]
    finally:
        daemon.stop()
        runner.join(timeout=30)
