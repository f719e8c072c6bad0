"""Zero events lost across a broker restart (issue 19): `edge-tl serve` with 4 camera-paced
streams (a shared clip looped at its fps, motion mode, counting line from its ground truth),
count events to a real Mosquitto broker (QoS 1, persistent sessions) and to JSON Lines; the
broker is stopped for `--down` seconds in the middle of the run. Every count event in the JSON
Lines file must reach the subscriber. Results to benchmarks/results/mqtt-restart.json.

    .venv/bin/python benchmarks/mqtt_restart.py --bundle /tmp/veh-prior \\
        --clip ../shared/data/videos/highway-720p.mp4 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from edge_tl.bench.mqtt_broker import start_mosquitto  # noqa: E402
from edge_tl.bench.system import free_port, system_info  # noqa: E402
from edge_tl.runtime.config import MqttConfig, ServeConfig, StreamConfig  # noqa: E402
from edge_tl.runtime.daemon import Daemon  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--down", type=float, default=10, help="seconds the broker is away")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    truth = json.loads(args.clip.with_suffix(".counts.json").read_text())
    line = tuple(tuple(p) for p in truth["line"])
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker_dir = Path(tmp) / "broker"
        broker = start_mosquitto(port, broker_dir)
        received: list[dict] = []
        lock = threading.Lock()

        def on_message(client: object, userdata: object, message: mqtt.MQTTMessage) -> None:
            with lock:
                received.append(json.loads(message.payload))

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "bench-sub", clean_session=False)
        sub.on_connect = lambda c, *_: c.subscribe("edge-tl/#", qos=1)
        sub.on_message = on_message
        sub.reconnect_delay_set(1, 2)
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        events = Path(tmp) / "events.jsonl"
        config = ServeConfig(
            bundle=args.bundle,
            events=events,
            metrics_port=None,
            mqtt=MqttConfig(host="127.0.0.1", port=port),
            streams=[
                StreamConfig(
                    name=f"cam{i}", source=str(args.clip), realtime=True, loop=True, line=line
                )
                for i in range(args.streams)
            ],
        )
        daemon = Daemon(config)
        runner = threading.Thread(target=daemon.run)
        started = time.monotonic()
        runner.start()
        time.sleep(args.seconds / 2)
        broker.terminate()
        broker.wait()
        down_at = time.monotonic() - started
        time.sleep(args.down)
        broker = start_mosquitto(port, broker_dir)
        up_at = time.monotonic() - started
        time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        daemon.stop()
        runner.join()
        health = daemon.health()
        deadline = time.monotonic() + 30
        emitted = [
            json.loads(line)
            for line in events.read_text().splitlines()
            if json.loads(line)["kind"] == "count"
        ]
        key = lambda e: (e["stream"], e["frame"], e["track_id"])  # noqa: E731
        while time.monotonic() < deadline:
            with lock:
                if {key(e) for e in received} >= {key(e) for e in emitted}:
                    break
            time.sleep(0.2)
        sub.disconnect()
        sub.loop_stop()
        broker.terminate()
        broker.wait()
    with lock:
        got = [key(e) for e in received]
    want = {key(e) for e in emitted}
    result = {
        "streams": args.streams,
        "clip": args.clip.name,
        "seconds": args.seconds,
        "broker_down_s": [round(down_at, 1), round(up_at, 1)],
        "count_events_emitted": len(want),
        "received": len(set(got)),
        "lost": len(want - set(got)),
        "duplicates": len(got) - len(set(got)),
        "mqtt_sink": health["mqtt"],
        "frames": {name: s["frames"] for name, s in health["streams"].items()},
        "system": system_info(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mqtt-restart.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "system"}, indent=2))


if __name__ == "__main__":
    main()
