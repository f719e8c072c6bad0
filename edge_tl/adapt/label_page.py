"""`edge-tl label DIR`: a local page to label harvested tracks with the keyboard.

Each track is a strip of its crops; tracks are grouped by predicted class, least confident
first (where the model needs a person most). Keys 1-N pick a class and move on, `x` discards,
arrows move. Every change is written to `DIR/labels.csv` at once (whole file, atomically), so
a closed tab or a killed process loses nothing; a reload resumes at the first unlabelled track.

Served on 127.0.0.1 only, behind a random token in the URL it prints. Standard library only.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from edge_tl.adapt.labels import (
    DISCARD,
    FEW_TRACKS,
    LABELS_FILE,
    load_tracks,
    read_labels,
    write_labels,
)

__all__ = ["LabelServer"]


class LabelServer:
    def __init__(self, directory: Path, classes: Sequence[str], port: int = 0) -> None:
        self.directory = Path(directory).resolve()
        self.classes = list(classes)
        self.tracks = sorted(
            load_tracks(self.directory),
            key=lambda t: (t.class_ or "", t.score if t.score is not None else 0.0),
        )
        self.labels_file = self.directory / LABELS_FILE
        self.labels = read_labels(self.labels_file)
        self.token = secrets.token_urlsafe(16)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/?token={self.token}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> LabelServer:
        threading.Thread(target=self._server.serve_forever, name="label-page", daemon=True).start()
        return self

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_label(self, track_id: str, label: str) -> None:
        if track_id not in {t.id for t in self.tracks}:
            raise ValueError(f"no track {track_id}")
        if label not in (*self.classes, DISCARD):
            raise ValueError(f"'{label}' is not a class")
        with self._lock:  # one writer at a time; the file is replaced whole
            self.labels[track_id] = label
            write_labels(self.labels_file, self.labels)

    def state(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "few_tracks": FEW_TRACKS,
            "tracks": [
                {
                    "id": t.id,
                    "predicted": t.class_,
                    "score": t.score,
                    "crops": [f"/crops/{c}" for c in t.crops],
                    "label": self.labels.get(t.id),
                }
                for t in self.tracks
            ],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if not self._authorized(url.query):
                    return
                if url.path == "/":
                    self._reply(200, _PAGE.encode(), "text/html; charset=utf-8")
                elif url.path == "/api/tracks":
                    self._reply(200, json.dumps(page.state()).encode(), "application/json")
                elif url.path.startswith("/crops/"):
                    file = (page.directory / url.path.removeprefix("/crops/")).resolve()
                    if file.suffix == ".jpg" and file.is_file() and page.directory in file.parents:
                        self._reply(200, file.read_bytes(), "image/jpeg")
                    else:
                        self._reply(404, b"no such crop", "text/plain")
                else:
                    self._reply(404, b"not found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                if not self._authorized(url.query):
                    return
                if url.path != "/api/label":
                    self._reply(404, b"not found", "text/plain")
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    page.set_label(str(body["id"]), str(body["class"]))
                except (ValueError, KeyError, TypeError) as exc:
                    self._reply(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                    return
                self._reply(200, b'{"ok": true}', "application/json")

            def _authorized(self, query: str) -> bool:
                token = parse_qs(query).get("token", [""])[0]
                if secrets.compare_digest(token, page.token):
                    return True
                self._reply(
                    403, b"open the URL edge-tl label printed (it has the token)", "text/plain"
                )
                return False

            def _reply(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edge-tl label</title>
<style>
body { font-family: sans-serif; margin: 1.5em; background: #111; color: #eee; }
#strip img { height: 180px; margin-right: 6px; border: 1px solid #444; }
#keys span { display: inline-block; margin: 0 1em 0.5em 0; padding: 0.2em 0.5em; border: 1px solid #666; }
#keys span.chosen { background: #2a6; }
#status { color: #aaa; margin: 0.5em 0; }
#tally span { margin-right: 1em; } #tally span.few { color: #e94; }
</style></head>
<body>
<h2 id="title">loading…</h2>
<div id="status"></div>
<div id="strip"></div>
<div id="keys"></div>
<div id="tally"></div>
<p>Keys: <b>1-9</b> pick a class and go on, <b>x</b> discard, <b>←/→</b> previous/next.
Every key is saved to labels.csv at once.</p>
<script>
const token = new URLSearchParams(location.search).get("token");
let state = null, index = 0;
async function load() {
  state = await (await fetch("/api/tracks?token=" + token)).json();
  const first = state.tracks.findIndex(t => !t.label);
  index = first < 0 ? Math.max(0, state.tracks.length - 1) : first;
  show();
}
function show() {
  const tracks = state.tracks, done = tracks.filter(t => t.label).length;
  if (!tracks.length) { document.getElementById("title").textContent = "no tracks"; return; }
  const t = tracks[index];
  document.getElementById("title").textContent = `${t.id} (predicted ${t.predicted}, ${(t.score ?? 0).toFixed(2)})`;
  document.getElementById("status").textContent =
    `track ${index + 1} of ${tracks.length}, ${done} labelled` + (t.label ? `; label: ${t.label}` : "");
  document.getElementById("strip").innerHTML =
    t.crops.map(c => `<img src="${c}?token=${token}">`).join("");
  document.getElementById("keys").innerHTML = state.classes.map((c, i) =>
    `<span class="${t.label === c ? "chosen" : ""}">${i + 1} ${c}</span>`).join("") +
    `<span class="${t.label === "x" ? "chosen" : ""}">x discard</span>`;
  // tracks labelled per class: a class with few of them will not be learnt for this camera
  document.getElementById("tally").innerHTML = "labelled: " + state.classes.map(c => {
    const n = tracks.filter(x => x.label === c).length, few = n > 0 && n < state.few_tracks;
    return `<span class="${few ? "few" : ""}" data-class="${c}">${c} ${n}` +
      (few ? ` (label ${state.few_tracks}+ for adapt to learn it)` : "") + "</span>";
  }).join("");
  document.body.dataset.track = t.id;
  document.body.dataset.label = t.label || "";
}
async function label(value) {
  const t = state.tracks[index];
  const answer = await fetch("/api/label?token=" + token, {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({id: t.id, class: value})});
  if (!answer.ok) { document.getElementById("status").textContent = "not saved: " + await answer.text(); return; }
  t.label = value;
  if (index < state.tracks.length - 1) index++;
  show();
  document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
}
document.addEventListener("keydown", e => {
  if (!state) return;
  const n = parseInt(e.key, 10);
  if (n >= 1 && n <= state.classes.length) label(state.classes[n - 1]);
  else if (e.key === "x") label("x");
  else if (e.key === "ArrowRight" && index < state.tracks.length - 1) { index++; show(); }
  else if (e.key === "ArrowLeft" && index > 0) { index--; show(); }
});
load();
</script></body></html>
"""
