"""Remote inference over the KServe v2 protocol (Triton, KServe, MLServer, OpenVINO Model
Server), through NVIDIA's `tritonclient` (the [remote] extra).

`backend = "kserve://host:port/model"` (or `triton://…`) speaks gRPC, port 8001 by default;
`kserve+http://host:port/model` speaks HTTP, port 8000 by default. The bundle stays local: its
labels, input spec and preprocessing run here, only the graph runs on the server (exported there
with `edge-tl export-triton`), so `open()` checks that the server's model takes the bundle's input.

A server that goes away is a state, not a crash: a failed request is retried with backoff; once
the retries are spent the backend is *down*, every request fails at once with RemoteUnavailable
(no stream stalls on timeouts) and one request is let through per probe interval, which grows
from `probe_initial_s` to `probe_max_s`; the first one that succeeds makes it up again.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edge_tl._deps import require
from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import BackendError
from edge_tl.runtime.backends.base import Backend
from edge_tl.runtime.sources import Backoff

__all__ = ["KServeBackend", "RemoteUnavailable", "RemoteTarget", "parse_remote", "REMOTE_SCHEMES"]

log = logging.getLogger(__name__)

# scheme → protocol; the bare schemes use gRPC, the protocol of record for Triton at scale
REMOTE_SCHEMES = {
    "kserve": "grpc",
    "triton": "grpc",
    "kserve+grpc": "grpc",
    "triton+grpc": "grpc",
    "kserve+http": "http",
    "triton+http": "http",
}
_DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.uint8): "UINT8"}


class RemoteUnavailable(BackendError):
    """The inference server cannot be reached (or keeps failing); the stream keeps running."""


@dataclass(frozen=True)
class RemoteTarget:
    protocol: str  # grpc | http
    host: str
    port: int
    model: str
    version: str = ""  # "" = the server's policy (latest)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        version = f"/{self.version}" if self.version else ""
        return f"kserve+{self.protocol}://{self.address}/{self.model}{version}"


def parse_remote(spec: str) -> RemoteTarget | None:
    """A RemoteTarget for `kserve://host:port/model[/version]` and its siblings; None when `spec`
    is not a remote backend; a BackendError naming what is wrong when it is one, badly written."""
    if "://" not in spec:
        return None
    parts = urlsplit(spec)
    protocol = REMOTE_SCHEMES.get(parts.scheme)
    if protocol is None:
        raise BackendError(
            f"backend '{spec}': unknown scheme '{parts.scheme}'; use one of "
            + ", ".join(f"{s}://" for s in REMOTE_SCHEMES)
        )
    path = [p for p in parts.path.split("/") if p]
    if not parts.hostname or not path or len(path) > 2:
        raise BackendError(
            f"backend '{spec}': expected {parts.scheme}://HOST[:PORT]/MODEL[/VERSION]"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[protocol]
    except ValueError:
        raise BackendError(f"backend '{spec}': the port is not a number") from None
    return RemoteTarget(protocol, parts.hostname, port, path[0], path[1] if len(path) > 1 else "")


class KServeBackend(Backend):
    name = "kserve"
    requires = ("tritonclient", "remote")
    auto_rank = 99  # never chosen by `auto`: a remote server is named, not discovered

    @classmethod
    def cannot_serve(cls, bundle: Bundle, precision: Precision) -> str | None:
        return "a remote server is named, not chosen: use kserve://HOST:PORT/MODEL"

    def __init__(
        self,
        bundle: Bundle,
        precision: Precision = Precision.FP32,
        threads: int | None = None,
        shared_host: bool = False,
        target: RemoteTarget | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        retry_backoff_s: float = 0.05,
        probe_initial_s: float = 0.5,
        probe_max_s: float = 10.0,
    ) -> None:
        super().__init__(bundle, precision, threads, shared_host)
        if target is None:
            raise BackendError("backend kserve: name the server, e.g. kserve://HOST:8001/MODEL")
        self.target, self.timeout_s, self.retries = target, timeout_s, retries
        self.retry_backoff_s = retry_backoff_s
        self.probe_initial_s, self.probe_max_s = probe_initial_s, probe_max_s
        self.failures = 0  # requests that failed after their retries (a metric for the daemon)
        self.max_batch: int | None = None
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._failed_probes = 0
        self._rng = random.Random(0)  # Backoff's jitter source; unused at jitter 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def describe(self) -> str:
        return f"kserve {self.target} {self.precision.value}"

    def _open(self) -> None:
        # gRPC's fork handlers crash a process that later starts subprocesses (worker
        # processes, ffmpeg, tests) once channels have existed; edge-tl never forks a channel
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
        self._client_module = require(f"tritonclient.{self.target.protocol}", "remote")
        self._errors = require("tritonclient.utils", "remote").InferenceServerException
        if self.target.protocol == "grpc":
            self._client = self._client_module.InferenceServerClient(self.target.address)
        else:
            self._client = self._client_module.InferenceServerClient(
                self.target.address,
                connection_timeout=self.timeout_s,
                network_timeout=self.timeout_s,
            )
        try:
            ready = self._call(self._client.is_model_ready, self.target.model, self.target.version)
            if not ready:
                raise BackendError(
                    f"{self.target}: the server is up but model '{self.target.model}' is not ready "
                    "(not in its repository, or failed to load: see the server's log)"
                )
            metadata = self._call(
                self._client.get_model_metadata, self.target.model, self.target.version
            )
            config = self._call(
                self._client.get_model_config, self.target.model, self.target.version
            )
        except (self._errors, OSError) as exc:
            raise RemoteUnavailable(
                f"{self.target}: server not reachable: {_first_line(exc)}"
            ) from None
        self._input, self._output = self._check_signature(_as_dict(metadata))
        # larger batches are sent in parts: the server refuses more than its max_batch_size
        self.max_batch = _max_batch_size(config) or None

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """A client call with the timeout: per call on gRPC, set on the client for HTTP."""
        if self.target.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        return method(*args, **kwargs)

    def _check_signature(self, metadata: dict[str, Any]) -> tuple[dict[str, Any], str]:
        inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
        if len(inputs) != 1 or not outputs:
            raise BackendError(
                f"{self.target}: the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                "expected one input and an output (export it with `edge-tl export-triton`)"
            )
        spec = self.input_spec
        raw = self.raw_input is not None
        want_shape = [spec.height, spec.width, 3] if raw else [3, spec.height, spec.width]
        have_shape = [int(d) for d in inputs[0]["shape"]][-3:]
        want_types = ("UINT8",) if raw else ("FP32", "FP16")
        if have_shape != want_shape or inputs[0]["datatype"] not in want_types:
            raise BackendError(
                f"{self.target}: the model takes {inputs[0]['datatype']} {have_shape}, the bundle "
                f"{self.bundle.path} sends {want_types[0]} {want_shape}: not this bundle's graph"
            )
        return inputs[0], outputs[0]["name"]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            now = time.monotonic()
            if self._down_since is not None and now < self._next_probe:
                raise RemoteUnavailable(
                    f"{self.target}: down for {now - self._down_since:.0f} s (next try in "
                    f"{self._next_probe - now:.1f} s)"
                )
            probing = self._down_since is not None
        attempts = 1 if probing else 1 + self.retries
        step = self.max_batch or len(batch)
        for attempt in range(attempts):
            try:
                parts = [self._request(batch[i : i + step]) for i in range(0, len(batch), step)]
            except (self._errors, OSError) as exc:
                if not _is_outage(exc):  # the server answered and refused: a bug, not an outage
                    raise BackendError(f"{self.target}: {_first_line(exc)}") from None
                error = exc
                if attempt + 1 < attempts:
                    time.sleep(self.retry_backoff_s * 2**attempt)
                continue
            self._mark_up()
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._mark_down(error)
        raise RemoteUnavailable(f"{self.target}: {_first_line(error)}")

    def _request(self, batch: np.ndarray) -> np.ndarray:
        module = self._client_module
        if self._input["datatype"] == "FP16" and batch.dtype == np.float32:
            batch = batch.astype(np.float16)
        request = module.InferInput(self._input["name"], list(batch.shape), _DTYPES[batch.dtype])
        request.set_data_from_numpy(batch)
        result = self._call(
            self._client.infer,
            self.target.model,
            [request],
            model_version=self.target.version,
            outputs=[module.InferRequestedOutput(self._output)],
        )
        return result.as_numpy(self._output).astype(np.float32, copy=False)

    def _mark_down(self, error: Exception) -> None:
        with self._lock:
            self.failures += 1
            now = time.monotonic()
            if self._down_since is None:
                self._down_since, self._failed_probes = now, 0
                log.error("%s: remote_down (%s)", self.target, _first_line(error))
            else:
                self._failed_probes += 1
            # the sources' reconnect schedule, without jitter: one server, not many cameras
            probes = Backoff(initial_s=self.probe_initial_s, max_s=self.probe_max_s, jitter=0.0)
            self._next_probe = now + probes.delay(self._failed_probes, self._rng)

    def _mark_up(self) -> None:
        with self._lock:
            if self._down_since is not None:
                log.info(
                    "%s: up again after %.1f s", self.target, time.monotonic() - self._down_since
                )
            self._down_since = None

    def _close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
        self._client = None


def _as_dict(metadata: Any) -> dict[str, Any]:
    """gRPC returns a protobuf message, HTTP a dict: one shape for both."""
    if isinstance(metadata, dict):
        return metadata
    return {
        key: [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
            for t in getattr(metadata, key)
        ]
        for key in ("inputs", "outputs")
    }


def _max_batch_size(config: Any) -> int:
    if isinstance(config, dict):  # HTTP: the config itself
        return int(config.get("max_batch_size", 0))
    return int(config.config.max_batch_size)  # gRPC: ModelConfigResponse


def _is_outage(exc: BaseException) -> bool:
    """Connection refused or reset, timeouts, a server shutting down or starting (its models
    unloaded or not yet loaded): worth retrying. Anything else is a refused request."""
    if isinstance(exc, OSError):
        return True
    status = str(getattr(exc, "status", lambda: None)() or "")
    outage_statuses = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "NOT_FOUND", "503", "504")
    text = str(exc).lower()
    model_away = "unknown model" in text or "is not ready" in text or "unavailable" in text
    return not status or model_away or any(code in status for code in outage_statuses)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
