"""The MQTT sink against a real Mosquitto broker started here: QoS 1, a broker restart in the
middle of a run, and every event delivered exactly as emitted (none lost), overflow counted."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from edge_tl.bench.mqtt_broker import mosquitto_path, start_mosquitto
from edge_tl.bench.system import free_port
from edge_tl.runtime.sinks import MqttSink

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed (edge-tl[mqtt])")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(mosquitto_path() is None, reason="no mosquitto (apt-get install mosquitto)"),
]


class Subscriber:
    """A persistent-session subscriber (clean_session False): the broker keeps its messages
    while either side is away."""

    def __init__(self, port: int) -> None:
        self.received: list[dict] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="edge-tl-test-sub", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe("edge-tl/#", qos=1)
        self.client.on_message = self._message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: object, userdata: object, message: object) -> None:
        with self._lock:
            self.received.append(json.loads(message.payload))  # type: ignore[attr-defined]

    def ids(self) -> set[int]:
        with self._lock:
            return {event["id"] for event in self.received}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _event(i: int) -> dict:
    return {"kind": "count", "stream": f"cam{i % 4}", "id": i, "class": "car"}


def test_no_event_lost_across_a_broker_restart(tmp_path: Path) -> None:
    port = free_port()
    broker = start_mosquitto(port, tmp_path / "broker")
    subscriber = Subscriber(port)
    sink = MqttSink("127.0.0.1", port, kinds=("count",))
    try:
        time.sleep(0.5)  # both connected
        for i in range(200):
            sink.emit(_event(i))
            sink.emit({"kind": "class", "stream": "cam0", "id": -1})  # not a published kind
            time.sleep(0.002)
        broker.terminate()  # SIGTERM: mosquitto saves its sessions and exits
        broker.wait(timeout=10)
        for i in range(200, 400):  # the broker is away: paho keeps them
            sink.emit(_event(i))
        assert sink.stats()["pending"] > 0
        broker = start_mosquitto(port, tmp_path / "broker")
        for i in range(400, 600):
            sink.emit(_event(i))
            time.sleep(0.002)
        sink.close()  # waits for the broker's acknowledgements
        deadline = time.monotonic() + 20
        while len(subscriber.ids()) < 600 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subscriber.close()
        broker.terminate()
        broker.wait(timeout=10)
    stats = sink.stats()
    assert stats == {"published": 600, "acknowledged": 600, "pending": 0, "dropped": 0}
    assert subscriber.ids() == set(range(600))  # nothing lost, the other kind never published


def test_overflow_is_counted_not_hidden(tmp_path: Path) -> None:
    port = free_port()  # no broker listens: every event waits in paho's bounded queue
    sink = MqttSink("127.0.0.1", port, queue=50, flush_timeout_s=0.2)
    for i in range(80):
        sink.emit(_event(i))
    sink.close()
    assert sink.stats() == {"published": 50, "acknowledged": 0, "pending": 50, "dropped": 30}
