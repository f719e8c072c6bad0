"""What stopped or misled a new user (issue 16): each test fails on the code before the fix."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_tl.bundle import ArtifactKind, Bundle, Precision, stage_bundle
from edge_tl.cli import build_parser
from edge_tl.errors import SourceError
from edge_tl.runtime.backends import tensorrt as trt_backend
from edge_tl.runtime.config import load_config
from edge_tl.runtime.daemon import Daemon
from edge_tl.runtime.events import EVENT_KINDS
from edge_tl.runtime.sources import Backoff, VideoFileSource
from tests.conftest import run_cli
from tests.runtime.test_stream_runtime import make_traffic_clip


def test_an_existing_output_is_refused_before_any_work(tmp_path: Path) -> None:
    """Item 4: checked first, so even a missing dataset is not reached."""
    (tmp_path / "bundle").mkdir()
    result = run_cli("train", str(tmp_path / "no-such-data"), "-o", str(tmp_path / "bundle"))
    assert result.returncode == 1
    assert (
        "already exists; pass --overwrite" in result.stderr and "no-such-data" not in result.stderr
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["predict", "b", "x.jpg", "--top-k", "0"], "--top-k"),
        (["predict", "b", "x.jpg", "--batch-size", "0"], "--batch-size"),
        (["bench", "b", "--iters", "0"], "--iters"),
        (["train", "d", "-o", "o", "--epochs", "0"], "--epochs"),
        (["stream", "b", "--source", "x.mp4", "--stride", "-1"], "--stride"),
    ],
)
def test_counts_below_one_are_refused_before_any_work(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 7: argparse refuses them (exit 2) instead of a traceback minutes later."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err


def test_a_folder_of_unreadable_images_is_one_line(tmp_path: Path) -> None:
    """Item 7: no ZeroDivisionError from the head trainer."""
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "data" / label / f"{i}.jpg").write_bytes(b"not a jpeg")
    result = run_cli("train", str(tmp_path / "data"), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "none of its 6 images can be read" in result.stderr


@pytest.mark.slow
def test_an_unwritable_output_is_one_line(exported_bundle: Path, tmp_path: Path) -> None:
    """Item 7: an OSError while writing names the path (a file where a folder should be; a
    read-only folder behaves the same for users, but not for root, who runs CI)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    clip = tmp_path / "clip.mp4"
    make_traffic_clip(clip, ["disc"])
    result = run_cli(
        "stream", str(exported_bundle), "--source", str(clip), "--out", str(blocker / "e.jsonl")
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and str(blocker) in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "not a video"])
def test_stream_names_a_file_it_cannot_read_before_the_backend_starts(
    exported_bundle: Path, tmp_path: Path, kind: str
) -> None:
    clip = tmp_path / "clip.mp4"
    if kind == "not a video":
        clip.write_text("not a video")
    result = run_cli("stream", str(exported_bundle), "--source", str(clip))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"edge-tl: error: {clip}: ")
    assert "daemon" not in result.stderr  # no stream was started, so no failed state logged


def test_stream_takes_every_source_serve_takes() -> None:
    """Item 8: the URL is not turned into a path (rtsp:/127...)."""
    args = build_parser().parse_args(["stream", "b", "--source", "rtsp://127.0.0.1:8554/cam"])
    assert args.source == "rtsp://127.0.0.1:8554/cam"


@pytest.mark.slow
def test_stream_to_stdout_keeps_stdout_pure_jsonl(exported_bundle: Path, tmp_path: Path) -> None:
    """Item 8: events on stdout, one JSON object per line; the summary on stderr."""
    clip = tmp_path / "clip.mp4"
    make_traffic_clip(clip, ["disc", "stripes"])
    result = run_cli("stream", str(exported_bundle), "--source", str(clip), "--json", "-q")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    classified = [e for e in events if e["kind"] == "class"]
    assert classified and {e["kind"] for e in events} <= set(EVENT_KINDS)
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["frames"] == len(classified)


def test_reconnect_delays_never_exceed_the_maximum() -> None:
    """Item 11: the cap is applied after the jitter (33.4 s was seen with a 30 s maximum)."""
    backoff, rng = Backoff(initial_s=0.5, max_s=30.0, jitter=0.2), random.Random(0)
    delays = [backoff.delay(attempt, rng) for attempt in range(20) for _ in range(50)]
    assert max(delays) <= 30.0 and max(delays) > 29.0


def test_build_hint_only_where_a_builder_is_installed(
    exported_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 13: no `run: edge-tl build` on a CPU-only box; the path quoted where it is given."""
    spaced = tmp_path / "my bundle"
    spaced.symlink_to(exported_bundle)
    bundle = Bundle.load(spaced)
    monkeypatch.setattr(trt_backend, "_builder_installed", lambda: False)
    quiet = trt_backend.TensorRTBackend.cannot_serve(bundle, Precision.FP16)
    assert quiet == "the bundle has no fp16 TensorRT engine"
    monkeypatch.setattr(trt_backend, "_builder_installed", lambda: True)
    hinted = trt_backend.TensorRTBackend.cannot_serve(bundle, Precision.FP16)
    assert f"run: edge-tl build '{spaced}' --precision fp16" in hinted  # type: ignore[operator]


@pytest.mark.slow
def test_a_camera_that_never_connects_is_visible_and_serve_fails(
    exported_bundle: Path, tmp_path: Path
) -> None:
    """Item 5: its series exist from the start; `serve` exits non-zero when nothing ran."""
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nmetrics_port = 0\n'
        '[[streams]]\nname = "dead"\nsource = "rtsp://127.0.0.1:9/none"\n'
        "reconnect_initial_s = 0.1\nreconnect_max_s = 0.2\n"
    )
    daemon = Daemon(load_config(config))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        time.sleep(1.5)
        text = daemon.metrics.exposition().decode()
    finally:
        daemon.stop()
        runner.join(timeout=20)
    assert 'edge_tl_stream_up{stream="dead"} 0.0' in text
    assert 'edge_tl_reconnects_total{stream="dead"}' in text
    assert 'edge_tl_frames_total{stream="dead"} 0.0' in text

    files = tmp_path / "files.toml"
    files.write_text(
        f'bundle = "{exported_bundle}"\n[[streams]]\nname = "gone"\nsource = "{tmp_path / "no.mp4"}"\n'
    )
    result = run_cli("serve", str(files))
    assert result.returncode == 1
    assert "no stream delivered a frame" in result.stderr and "no.mp4" in result.stderr


@pytest.mark.slow
def test_a_busy_metrics_port_is_one_line(exported_bundle: Path, tmp_path: Path) -> None:
    """Item 5: not an OSError traceback."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    clip = tmp_path / "clip.mp4"
    make_traffic_clip(clip, ["disc"])
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nmetrics_host = "127.0.0.1"\nmetrics_port = {port}\n'
        f'[[streams]]\nname = "a"\nsource = "{clip}"\n'
    )
    try:
        result = run_cli("serve", str(config))
    finally:
        holder.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"metrics_port {port} on 127.0.0.1" in result.stderr


@pytest.mark.slow
def test_the_events_file_is_readable_while_the_daemon_runs(
    exported_bundle: Path, tmp_path: Path
) -> None:
    """Item 6: a reader tailing the file sees events within a second."""
    clip = tmp_path / "clip.mp4"
    make_traffic_clip(clip, ["disc", "stripes"] * 6)
    events = tmp_path / "events.jsonl"
    config = tmp_path / "serve.toml"
    config.write_text(
        f'bundle = "{exported_bundle}"\nevents = "{events}"\n'
        f'[[streams]]\nname = "a"\nsource = "{clip}"\nmode = "frame"\nrealtime = true\n'
    )
    daemon = Daemon(load_config(config))
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        deadline = time.time() + 10
        while time.time() < deadline and not daemon.frames.get("a"):
            time.sleep(0.05)
        time.sleep(1.0)
        assert runner.is_alive()  # still running: the clip lasts longer than this
        lines = events.read_text().splitlines()
        assert len(lines) >= 5 and json.loads(lines[-1])["stream"] == "a"
    finally:
        daemon.stop()
        runner.join(timeout=20)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    """Item 10: `events` and `counts` follow the same rule as `bundle`."""
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "serve.toml").write_text(
        'bundle = "b"\nevents = "out/events.jsonl"\ncounts = "out/counts.jsonl"\n'
        '[[streams]]\nname = "a"\nsource = "x.mp4"\n'
    )
    config = load_config(folder / "serve.toml")
    assert config.bundle == folder / "b"
    assert config.events == folder / "out" / "events.jsonl"
    assert config.counts == folder / "out" / "counts.jsonl"


@pytest.mark.slow
def test_a_bundle_moved_away_from_its_dataset_exports(
    exported_bundle: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """Item 3: fp16 needs no data; int8 names the real cause and takes --data DIR."""
    moved = tmp_path / "moved"
    shutil.copytree(exported_bundle, moved)
    with stage_bundle(moved, base=Bundle.load(moved)) as stage:
        stage.manifest.provenance.dataset.root = str(tmp_path / "gone")  # type: ignore[union-attr]

    result = run_cli("export", str(moved), "--precision", "fp32,fp16")
    assert result.returncode == 0, result.stderr
    assert "activation ranges are not checked" in result.stderr
    fp16 = Bundle.load(moved).find(ArtifactKind.ONNX, Precision.FP16)
    assert fp16 is not None and str(fp16.details["range_check"]).startswith("skipped")

    result = run_cli("export", str(moved), "--precision", "int8")
    assert result.returncode == 1
    assert "int8 needs training images" in result.stderr and "--data DIR" in result.stderr

    (tmp_path / "empty").mkdir()
    result = run_cli("export", str(moved), "--precision", "int8", "--data", str(tmp_path / "empty"))
    assert result.returncode == 1 and "none of the bundle's validation images" in result.stderr

    result = run_cli(
        "export", str(moved), "--precision", "int8", "--data", str(tiny_dataset), "--json"
    )
    assert result.returncode == 0, result.stderr
    int8 = json.loads(result.stdout)["precisions"][0]
    assert int8["precision"] == "int8" and int8["top1"] is not None  # scored on the moved data


@pytest.mark.slow
def test_one_bad_file_does_not_stop_predict(
    exported_bundle: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    """Item 9: the others are classified, the bad one reported, the exit non-zero."""
    folder = tmp_path / "photos"
    shutil.copytree(tiny_dataset / "disc", folder)
    (folder / "broken.png").write_bytes(b"truncated")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    result = run_cli("predict", str(exported_bundle), str(folder), "--json")
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert len(payload["predictions"]) == len(list((tiny_dataset / "disc").iterdir()))
    assert [Path(f["file"]).name for f in payload["failed"]] == ["broken.png"]
    assert "broken.png" in result.stderr and "OpenCV cannot decode (.gif)" in result.stderr


def test_an_image_named_like_a_video_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    """Item 9: FFmpeg would play it as a one-frame video."""
    fake = tmp_path / "clip.mp4"
    shutil.copy(next((tiny_dataset / "disc").iterdir()), fake)
    with pytest.raises(SourceError, match=r"clip\.mp4: an image, not a video"):
        VideoFileSource(fake)


def _demo_result(int8_top1: float, noisy: list[str]) -> dict:
    precision = {"bytes": 7e6, "agreement_fp32": 0.98, "measured_on": "ort", "images": 60}
    return {
        "dataset": {"images": 300, "classes": ["a", "b"], "val_images": 60},
        "val_top1_torch": 0.867,
        "val_top1_onnxruntime_fp32": 0.867,
        "export": [
            precision
            | {
                "precision": "fp32",
                "top1": 0.867,
                "details": {
                    "parity_vs_torch": {
                        "max_abs_logit_diff": 6e-6,
                        "top1_agreement": 1.0,
                        "images": 60,
                    }
                },
            },
            precision | {"precision": "int8", "top1": int8_top1, "details": {}},
        ],
        "bench": {
            "results": [
                {"backend": "onnxruntime", "latency": {"p50_ms": 3.5, "p99_ms": 3.7}},
                {"backend": "torch", "latency": {"p50_ms": 10.7, "p99_ms": 11.0}},
            ],
            "naive_torch": {"1": {"latency": {"p50_ms": 18.5}}},
            "noisy": noisy,
        },
        "speedup_onnxruntime_vs_torch_p50": 3.06,
        "stream": {
            "frames": 360,
            "fps": 170.0,
            "frame_accuracy": 0.833,
            "drift_events": 0,
            "events": "e",
        },
        "seconds": {"train_s": 7.0, "total_s": 45.0},
        "bundle": "b",
    }


def test_demo_summary_is_valid_markdown_and_says_what_it_measured() -> None:
    """Item 14: no stray `|` in cells, the noisy flag shown, int8 above fp32 explained."""
    from edge_tl.demo import summary_markdown

    text = summary_markdown(_demo_result(0.883, ["torch fp32 b1"]))
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.count("|") == 3 for line in rows)  # two cells each
    assert "above fp32 by chance on 60 images" in text
    assert "noisy timings | torch fp32 b1" in text and "tuned eager PyTorch" in text
    quiet = summary_markdown(_demo_result(0.85, []))
    assert "by chance" not in quiet and "noisy" not in quiet


def test_piped_progress_prints_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 14: long steps are not silent when output is piped (stderr is not a terminal here)."""
    from edge_tl import progress

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    assert list(progress.track(range(3), "export int8", total=3)) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("export int8: 3/3 (")


def test_one_spelling_per_meaning_and_the_old_ones_still_work() -> None:
    """Item 12: --out, --precision, --batch-size everywhere; old spellings as hidden aliases;
    --debug and -q before or after the command."""
    from edge_tl.cli import _canonical

    parser = build_parser()
    new = parser.parse_args(
        _canonical(["-q", "bench", "b", "--precision", "fp32,int8", "--batch-size", "1,8"])
    )
    old = parser.parse_args(
        _canonical(["bench", "b", "--precisions=fp32,int8", "--batch", "1,8", "-q"])
    )
    assert (
        (new.precisions, new.batch, new.quiet)
        == (old.precisions, old.batch, old.quiet)
        == ("fp32,int8", "1,8", True)
    )
    assert parser.parse_args(_canonical(["train", "d", "--output", "x"])).output == Path("x")
    assert parser.parse_args(_canonical(["train", "d", "--out", "x"])).output == Path("x")
    assert parser.parse_args(_canonical(["--debug", "info", "b"])).debug is True
    assert parser.parse_args(["info", "b"]).debug is False
    bench_help = parser._subparsers._group_actions[0].choices["bench"].format_help()  # type: ignore[union-attr]
    assert "--precisions" not in bench_help and "--batch-size" in bench_help


def test_shell_completion_completes_commands_and_flags() -> None:
    """Item 12: the installed `edge-tl` answers bash's completion protocol (argcomplete)."""
    pytest.importorskip("argcomplete")
    script = Path(sys.executable).parent / "edge-tl"
    if not script.is_file():
        pytest.skip("edge-tl is not installed as a console script in this environment")

    def complete(line: str) -> set[str]:
        env = os.environ | {
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": " ",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
        }
        # bash reads the answer from fd 8; the shell points it at our stdout
        answer = subprocess.run(
            ["sh", "-c", f"'{script}' 8>&1 9>/dev/null"], env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        return set(answer.stdout.split())

    assert complete("edge-tl ev") == {"eval", "eval-counts"}
    assert "--precision" in complete("edge-tl bench b --pre")


def test_plots_say_what_they_show() -> None:
    """Item 16: y labels and the kept epoch on curves; a log axis and fanned-out labels when
    latencies span decades."""
    pytest.importorskip("matplotlib")
    from edge_tl.bench.report import accuracy_latency_figure
    from edge_tl.reports import curves_figure

    history = [{"loss": 1.0 / e, "train_top1": 0.8, "val_top1": 0.7 + e / 100} for e in range(1, 6)]
    fig = curves_figure(history, "head", kept_epoch=4)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "top-1 accuracy"
    assert "kept (epoch 4)" in [t.get_text() for t in acc_ax.get_legend().get_texts()]

    runs = [
        ({"backend": "onnxruntime", "precision": p, "latency": {"p50_ms": ms}}, 0.97)
        for p, ms in (("fp32", 30.0), ("fp16", 30.5), ("int8", 1.2))
    ]
    fig = accuracy_latency_figure(runs)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    offsets = {a.xyann for a in ax.texts}
    assert len(offsets) == 3  # three points, three label positions


def test_readme_says_how_big_training_installs_and_how_to_shrink_them() -> None:
    """Item 15: the measured size of the CUDA torch wheel and PyTorch's CPU index."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "6.4 GB" in readme and "download.pytorch.org/whl/cpu" in readme
