"""The adaptation loop's parts: harvest caps and rotation, labels written atomically, the
ImageFolder export, and adapt keeping the bundle's classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_tl.adapt.labels import (
    LABELS_FILE,
    export_labelled,
    load_tracks,
    read_labels,
    track_of,
    write_labels,
)
from edge_tl.bundle import Bundle
from edge_tl.errors import DataError
from edge_tl.runtime.harvest import TRACKS_FILE, Harvester
from tests.conftest import run_cli


def _crop(size: int, value: int = 128) -> np.ndarray:
    rng = np.random.default_rng(size)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8) // 2 + value // 2


def _record(frame: int) -> dict:
    return {"first_frame": frame - 9, "last_frame": frame + 3, "count_frame": frame,
            "box": [10, 20, 30, 40], "class": "car", "score": 0.9}  # fmt: skip


def test_harvest_keeps_the_largest_crops_and_one_line_per_track(tmp_path: Path) -> None:
    harvester = Harvester(tmp_path, "gate", max_crops=2)
    track_id = harvester.save(7, [_crop(20), _crop(60), _crop(40)], _record(100))
    assert track_id == "gate/7"
    (line,) = [json.loads(x) for x in (tmp_path / TRACKS_FILE).read_text().splitlines()]
    assert line["id"] == "gate/7" and line["count_frame"] == 100 and line["class"] == "car"
    assert line["crops"] == ["gate/7/0.jpg", "gate/7/1.jpg"]
    sizes = [load_side(tmp_path / c) for c in line["crops"]]
    assert sizes == [60, 40]  # largest first, the smallest dropped


def load_side(path: Path) -> int:
    import cv2

    return cv2.imread(str(path)).shape[0]


def test_harvest_ids_continue_after_a_restart(tmp_path: Path) -> None:
    Harvester(tmp_path, "gate").save(3, [_crop(30)], _record(10))
    again = Harvester(tmp_path, "gate")  # the daemon restarted: its track ids start at 1 again
    assert again.save(1, [_crop(30)], _record(20)) == "gate/4"
    assert [t.id for t in load_tracks(tmp_path)] == ["gate/3", "gate/4"]


def test_harvest_rotates_the_oldest_tracks_past_the_cap(tmp_path: Path) -> None:
    harvester = Harvester(tmp_path, "gate", max_crops=1, max_mb=0.02)  # about 20 kB
    for track in range(1, 9):
        harvester.save(track, [_crop(96)], _record(track * 10))
    kept = sorted(int(p.name) for p in (tmp_path / "gate").iterdir())
    assert kept and kept[-1] == 8 and len(kept) < 8
    assert sum(f.stat().st_size for f in (tmp_path / "gate").rglob("*.jpg")) <= 20_000
    assert [t.track_id for t in load_tracks(tmp_path)] == kept  # lines of rotated tracks skipped
    assert len((tmp_path / TRACKS_FILE).read_text().splitlines()) == 8


def test_a_failed_write_is_counted_not_raised(tmp_path: Path) -> None:
    (tmp_path / "gate").write_text("a file where the stream's folder goes")
    harvester = Harvester(tmp_path, "gate")
    assert harvester.save(1, [_crop(30)], _record(10)) is None
    assert harvester.save(2, [_crop(30)], _record(20)) is None
    assert harvester.failures == 2


def test_labels_are_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / LABELS_FILE
    write_labels(path, {"gate/2": "car", "gate/1": "x"})
    assert path.read_text() == "id,class\ngate/1,x\ngate/2,car\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    with open(path, "a") as f:  # a later row for the same id wins
        f.write("gate/1,bike\n")
    assert read_labels(path) == {"gate/1": "bike", "gate/2": "car"}


def test_export_from_csv_skips_discarded_and_refuses_unknown_classes(tmp_path: Path) -> None:
    harvest = tmp_path / "harvest"
    harvester = Harvester(harvest, "gate")
    for track in (1, 2, 3):
        harvester.save(track, [_crop(30), _crop(40)], _record(track * 10))
    write_labels(harvest / LABELS_FILE, {"gate/1": "car", "gate/2": "x", "gate/3": "truck"})
    result = run_cli("label", str(harvest), "--export", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tracks"] == {"car": 1, "truck": 1}
    files = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg")
    )
    assert files == [
        "car/gate__1__0.jpg",
        "car/gate__1__1.jpg",
        "truck/gate__3__0.jpg",
        "truck/gate__3__1.jpg",
    ]
    assert track_of(tmp_path / "out" / "car" / "gate__1__0.jpg") == "gate__1"
    with pytest.raises(DataError, match=r"track gate/3: class 'truck' is not one of the model's"):
        export_labelled(
            harvest, read_labels(harvest / LABELS_FILE), tmp_path / "o2", ["car", "bike"]
        )


@pytest.mark.slow
def test_adapt_keeps_classes_holds_out_whole_tracks_and_records_the_run(
    exported_bundle: Path, tiny_dataset: Path, tmp_path: Path
) -> None:
    labelled = tmp_path / "labelled"
    for label in ("disc", "stripes"):
        (labelled / label).mkdir(parents=True)
        for i, image in enumerate(sorted((tiny_dataset / label).iterdir())[:8]):
            shutil.copy(image, labelled / label / f"cam__{label}{i // 2}__{i % 2}.png")  # 4 tracks
    (labelled / "checker").mkdir()
    for i, image in enumerate(sorted((tiny_dataset / "checker").iterdir())[:4]):  # 2 tracks
        shutil.copy(image, labelled / "checker" / f"cam__checker{i // 2}__{i % 2}.png")
    out = tmp_path / "adapted"
    result = run_cli("adapt", str(exported_bundle), str(labelled), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["held_out_tracks"] == 3
    assert report["tracks"] == {"checker": 1, "disc": 3, "stripes": 3}
    (warning,) = report["warnings"]  # the class with too few tracks from the camera, only
    assert warning.startswith("checker: 2 labelled tracks from this camera")
    adapted = Bundle.load(out)
    assert adapted.labels == Bundle.load(exported_bundle).labels
    assert adapted.manifest.input == Bundle.load(exported_bundle).manifest.input
    (run,) = adapted.manifest.adaptations
    assert run.streams == ["cam"] and run.tracks == 7 and run.held_out_tracks == 3
    assert adapted.manifest.reference is not None

    assert run.keep_original == 0.5

    # the saved head is the new head averaged with the original one, weight by weight
    alone = tmp_path / "alone"
    result = run_cli("adapt", str(exported_bundle), str(labelled), "-o", str(alone),
                     "--keep-original", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    original, new, mixed = (_head(b) for b in (exported_bundle, alone, out))
    for part in range(2):
        assert not np.allclose(new[part], original[part])
        np.testing.assert_allclose(mixed[part], (new[part] + original[part]) / 2, atol=1e-5)
    result = run_cli("adapt", str(exported_bundle), str(labelled), "-o", str(tmp_path / "c"),
                     "--keep-original", "1")  # fmt: skip
    assert result.returncode == 1 and "--keep-original 1.0: must be" in result.stderr

    (labelled / "airplane").mkdir()
    shutil.copy(next((tiny_dataset / "disc").iterdir()), labelled / "airplane" / "cam__p__0.png")
    result = run_cli("adapt", str(exported_bundle), str(labelled), "-o", str(tmp_path / "b"))
    assert result.returncode == 1 and "airplane are not labels of the model" in result.stderr


def _head(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's weight and bias in a bundle's model.pt."""
    from edge_tl.models.checkpoint import load_model

    classifier = load_model(bundle / "model.pt").get_classifier()
    return classifier.weight.detach().numpy(), classifier.bias.detach().numpy()


@pytest.mark.slow
def test_harvest_command_keeps_every_counted_track(exported_bundle: Path, tmp_path: Path) -> None:
    from tests.runtime.test_stream_runtime import make_traffic_clip

    clip = tmp_path / "road.mp4"
    truth = make_traffic_clip(clip, ["disc", "stripes", "checker"])
    out = tmp_path / "harvest"
    result = run_cli(
        "harvest", str(exported_bundle), "--source", str(clip), "--line", "0.5,0,0.5,1",
        "-o", str(out), "--crops", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tracks"] == len(truth)
    tracks = load_tracks(out)
    assert [t.id for t in tracks] == [f"road/{t.track_id}" for t in tracks]
    assert all(1 <= len(t.crops) <= 3 for t in tracks)
    assert all(t.class_ in Bundle.load(exported_bundle).labels for t in tracks)


def _harvest_three(directory: Path) -> None:
    harvester = Harvester(directory, "gate")
    for track, score in ((1, 0.9), (2, 0.4), (3, 0.6)):
        harvester.save(track, [_crop(40), _crop(50)], _record(track * 10) | {"score": score})


def test_label_page_needs_its_token(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from edge_tl.adapt.label_page import LabelServer

    _harvest_three(tmp_path)
    server = LabelServer(tmp_path, ["car", "bike"]).start()
    local = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        base = server.url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            local.open(base + "api/tracks?token=wrong")
        assert refused.value.code == 403
        state = json.loads(local.open(base + f"api/tracks?token={server.token}").read())
        assert [t["id"] for t in state["tracks"]] == [
            "gate/2",
            "gate/3",
            "gate/1",
        ]  # least sure first
        with pytest.raises(urllib.error.HTTPError) as outside:
            local.open(base + f"crops/../../etc/passwd?token={server.token}")
        assert outside.value.code == 404
    finally:
        server.shutdown()


def _chrome():  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip(
            "Debian's chromium and chromedriver are not installed (apt install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@pytest.mark.slow
def test_label_page_in_a_real_browser_with_keys_and_a_reload(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from edge_tl.adapt.label_page import LabelServer

    _harvest_three(tmp_path)
    server = LabelServer(tmp_path, ["car", "bike"]).start()
    browser = _chrome()
    try:
        browser.get(server.url)
        body = browser.find_element(By.TAG_NAME, "body")
        wait = WebDriverWait(browser, 10)

        def shows(track: str) -> None:
            wait.until(
                lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-track") == track
            )

        def saved(count: int) -> None:
            wait.until(
                lambda b: (
                    b.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == str(count)
                )
            )

        shows("gate/2")  # the least confident first
        assert len(browser.find_elements(By.CSS_SELECTOR, "#strip img")) == 2
        body.send_keys("2")  # bike, then on to the next
        saved(1)
        shows("gate/3")
        body.send_keys("x")  # discarded
        saved(2)
        assert read_labels(tmp_path / LABELS_FILE) == {"gate/2": "bike", "gate/3": "x"}

        browser.refresh()  # mid-way: the page resumes at the first unlabelled track
        body = browser.find_element(By.TAG_NAME, "body")
        shows("gate/1")
        body.send_keys(Keys.ARROW_LEFT)
        shows("gate/3")
        assert body.get_attribute("data-label") == "x"
        body.send_keys("1")  # changed my mind: a car
        saved(1)
        assert read_labels(tmp_path / LABELS_FILE) == {"gate/2": "bike", "gate/3": "car"}
        # the tally under the keys: one track each so far, flagged as too few to learn from
        tally = {
            span.get_attribute("data-class"): (span.text, span.get_attribute("class"))
            for span in browser.find_elements(By.CSS_SELECTOR, "#tally span")
        }
        assert tally["car"][0].startswith("car 1") and tally["car"][1] == "few"
        assert tally["bike"][0].startswith("bike 1") and tally["bike"][1] == "few"
    finally:
        browser.quit()
        server.shutdown()


def test_camera_offset_is_the_look_not_the_class_mix() -> None:
    from edge_tl.adapt.retrain import _camera_offset

    rng = np.random.default_rng(0)
    means = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # two classes apart in feature space
    original_y = np.repeat([0, 1], 200)
    original_x = means[original_y] + rng.normal(0, 0.1, (400, 3))
    look = np.array([0.0, 0.0, 2.0])  # what the new camera adds to every crop
    new_y = np.array([0] * 45 + [1] * 5)  # its traffic: mostly class 0
    new_x = means[new_y] + look + rng.normal(0, 0.1, (50, 3))
    offset = _camera_offset(original_x, original_y, new_x, new_y)
    assert np.allclose(offset, look, atol=0.1)
    # a plain mean difference would mix the camera's look with its class mix
    assert not np.allclose(new_x.mean(axis=0) - original_x.mean(axis=0), look, atol=0.5)
