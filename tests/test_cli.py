"""CLI: help on every command, one-line errors with non-zero exit, the end-to-end flow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tl.bundle import Bundle
from edge_tl.cli import build_parser, main
from tests.conftest import make_image_folder, run_cli, snapshot

COMMANDS = [
    "train",
    "data-check",
    "export",
    "build",
    "predict",
    "eval",
    "stream",
    "bench",
    "serve",
    "info",
    "eval-counts",
    "harvest",
    "label",
    "adapt",
    "demo",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: edge-tl {command}" in out


def test_every_command_is_listed_in_top_level_help() -> None:
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "does/not/exist"],
        ["predict", "does/not/exist", "x.jpg"],
        ["bench", "does/not/exist"],
        ["stream", "does/not/exist", "--source", "none.mp4"],
        ["export", "does/not/exist"],
        ["build", "does/not/exist"],
        ["eval", "does/not/exist"],
        ["data-check", "does/not/exist"],
        ["train", "does/not/exist", "-o", "out"],
    ],
)
def test_bad_paths_give_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-tl: error: ") and "does/not/exist" in err
    assert len(err.splitlines()) == 1


def test_single_class_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "only").mkdir()
    cv2.imwrite(str(tmp_path / "only" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "b")]) == 1
    assert "need at least 2 class folders" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_stream_bench_info_on_real_bundle(
    exported_bundle: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    # predict: the tiny model must get its own validation images mostly right
    bundle = Bundle.load(exported_bundle)
    val = bundle.manifest.provenance.dataset.split.val_files  # type: ignore[union-attr]
    result = run_cli(
        "predict", str(exported_bundle), *[str(tiny_dataset / f) for f in val], "--json"
    )
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    correct = [Path(p["file"]).parent.name == p["label"] for p in predictions]
    assert len(correct) == len(val) and np.mean(correct) >= 0.8

    # stream: a real mp4 written by OpenCV and decoded back, one event per frame
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 96))
    truth = []
    for name in ("disc", "stripes"):
        image = cv2.resize(cv2.imread(str(next((tiny_dataset / name).iterdir()))), (96, 96))
        for _ in range(5):
            writer.write(image)
            truth.append(name)
    writer.release()
    events_file = tmp_path / "events.jsonl"
    result = run_cli(
        "stream", str(exported_bundle), "--source", str(clip), "--out", str(events_file), "--json"
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [e["frame"] for e in events] == list(range(10))
    assert all(set(e["latency_ms"]) >= {"decode", "preprocess", "infer", "total"} for e in events)
    assert np.mean([e["class"] == t for e, t in zip(events, truth, strict=True)]) >= 0.8
    assert json.loads(result.stdout)["frames"] == 10

    # bench: both backends measured in one run, numbers present and positive
    result = run_cli("bench", str(exported_bundle), "--iters", "5", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["backend"]: r for r in json.loads(result.stdout)["results"]}
    assert set(rows) == {"onnxruntime", "torch"}
    assert all(0 < r["latency"]["p50_ms"] <= r["latency"]["p99_ms"] for r in rows.values())

    result = run_cli("info", str(exported_bundle))
    assert result.returncode == 0 and "fp32.onnx" in result.stdout


@pytest.mark.slow
def test_train_cli_writes_a_verified_bundle(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = run_cli(
        "train", str(tiny_dataset), "-o", str(out), "--input-size", "64", "--json", "--epochs", "20"
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["labels"] == ["checker", "disc", "stripes"]
    assert payload["val"]["top1"] > 0.5  # chance is 1/3
    again = run_cli("train", str(tiny_dataset), "-o", str(out), "--input-size", "64")
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.slow
def test_killed_export_leaves_previous_bundle_intact(exported_bundle: Path, tmp_path: Path) -> None:
    import shutil

    bundle_dir = tmp_path / "bundle"
    shutil.copytree(exported_bundle, bundle_dir)
    before = snapshot(bundle_dir)
    code = "import sys\nfrom edge_tl.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "export", str(bundle_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    staged_graph = None
    while time.monotonic() < deadline and process.poll() is None:
        stages = list(tmp_path.glob(".edge-tl-staging-*/fp32.onnx"))
        if stages and stages[0].stat().st_size > 0:
            staged_graph = stages[0]
            break
        time.sleep(0.05)
    assert staged_graph is not None, "export never started writing its staged graph"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert snapshot(bundle_dir) == before
    Bundle.load(bundle_dir)  # still valid, hashes included
    # the next write clears what the killed process left behind
    assert (
        run_cli("export", str(bundle_dir), "--precision", "fp32", "--check-images", "8").returncode
        == 0
    )
    assert not list(tmp_path.glob(".edge-tl-staging-*"))


@pytest.mark.slow
def test_test_sets_are_scored_beside_validation_and_recorded(
    tiny_dataset: Path, tmp_path: Path
) -> None:

    footage = make_image_folder(tmp_path / "other-footage", per_class=4, seed=7)
    out = tmp_path / "bundle"
    result = run_cli(
        "train", str(tiny_dataset), "-o", str(out), "--preset", "frozen", "--input-size", "64",
        "--epochs", "20", "--test", str(footage), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    scored = payload["test_sets"]["other-footage"]
    assert scored["num_images"] == 12 and 0 <= scored["top1"] <= 1
    assert set(scored["per_class_recall"]) == {"checker", "disc", "stripes"}
    card = (out / "reports" / "scorecard.md").read_text()
    assert "| val |" in card and "| other-footage | 12 |" in card
    assert (out / "reports" / "confusion-test-other-footage.png").is_file()

    # eval: validation and the test set side by side, and the bundle records the test set
    result = run_cli("eval", str(out), "--test", str(footage), "--backend", "torch")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["val", "other-footage"]
    recorded = Bundle.load(out).manifest.metrics["torch"].test_sets["other-footage"]
    assert recorded.num_images == 12 and recorded.measured_on.startswith("torch")
    assert recorded.top1 == pytest.approx(scored["top1"])  # same model, same images
    Bundle.load(out)  # hashes still verify after the manifest was rewritten

    # test-time augmentation: scored beside the plain rows, with its latency cost measured
    result = run_cli(
        "eval", str(out), "--test", str(footage), "--backend", "torch", "--tta", "hflip", "--json"
    )
    assert result.returncode == 0, result.stderr
    tta = json.loads(result.stdout)["tta"]
    assert set(tta["sets"]) == {"val · tta hflip", "other-footage · tta hflip"}
    assert tta["latency"]["passes"] == 2 and tta["latency"]["p50_ms_tta"] > 0
    assert tta["sets"]["other-footage · tta hflip"]["num_images"] == 12
    assert run_cli("eval", str(out), "--tta", "spin").stderr.count("hflip-rot180") == 1

    # --no-record leaves the bundle byte for byte as it was; a wrong class is one line
    before = snapshot(out)
    assert (
        run_cli(
            "eval", str(out), "--test", str(footage), "--backend", "torch", "--no-record"
        ).returncode
        == 0
    )
    assert snapshot(out) == before
    (footage / "plane").mkdir()
    cv2.imwrite(str(footage / "plane" / "p.png"), np.zeros((8, 8, 3), np.uint8))
    result = run_cli("eval", str(out), "--test", str(footage), "--backend", "torch")
    assert result.returncode == 1 and "plane" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_presets_and_the_flags_laid_over_them(tmp_path: Path) -> None:
    from edge_tl.cli.train import train_config

    def config(*flags: str):  # type: ignore[no-untyped-def]
        return train_config(build_parser().parse_args(["train", "DATA", "-o", "OUT", *flags]))

    default = config()
    assert default.backbone == "efficientnet_lite2" and default.finetune.epochs == 0
    fast = config("--preset", "fast", "--test", "a", "--test", "b")
    assert fast.backbone == "efficientnet_lite0" and fast.test_dirs == (Path("a"), Path("b"))
    tuned = config(
        "--preset", "fast", "--finetune-epochs", "2", "--finetune-blocks", "all",
        "--augment", "overhead", "--ema", "0.99", "--head-views", "2", "--seed", "3",
    )  # fmt: skip
    assert tuned.backbone == "efficientnet_lite0"  # the preset's, flags only change their field
    assert (tuned.finetune.epochs, tuned.finetune.blocks, tuned.finetune.augment) == (
        2, None, "overhead",
    )  # fmt: skip
    assert tuned.finetune.ema_decay == 0.99 and tuned.head.views == 2
    assert tuned.finetune.seed == tuned.head.seed == 3
    assert config("--backbone", "efficientnet_lite1").backbone == "efficientnet_lite1"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--preset", "huge"], "unknown preset 'huge'; choose from default, fast"),
        (["--finetune-blocks", "top"], "--finetune-blocks takes a number or 'all'"),
        (["--augment", "wild", "--finetune-epochs", "1"], "augmentation 'wild' is unknown"),
    ],
)
def test_bad_training_choices_are_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image_folder(tmp_path / "data", per_class=2)
    assert main(["train", str(tmp_path / "data"), "-o", str(tmp_path / "b"), *flags]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()
