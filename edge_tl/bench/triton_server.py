"""A real Triton Inference Server on 127.0.0.1 for tests and benchmarks on machines without a GPU.

The `nvidia-pytriton` wheel on PyPI carries Triton's own `tritonserver` binary with the python
backend (and no other). Installing the wheel would pin numpy < 2 and break OpenCV, so it is
*downloaded* (`pip download --no-deps`) and only the server, its libraries and the backend stub
for this Python are unpacked into a folder (`python -m edge_tl.bench.triton_server --install
DIR`; `make test` does it into .venv/tritonserver).

The python backend's stub embeds the system's libpython of the same minor version and imports
numpy and onnxruntime from DIR/python (EDGE_TL_TRITON_SITE_PACKAGES, read by the generated
model.py: the stub's embedded Python ignores PYTHONPATH). That folder gets its own numpy < 2
(the stub's pybind11 cannot hand numpy 2 arrays to Triton: every output arrives empty) and the
same onnxruntime version as this side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

from edge_tl.errors import EdgeTLError
from edge_tl.files import staged_folder

__all__ = ["find_tritonserver", "install_tritonserver", "start_tritonserver"]

DEFAULT_DIR = Path(sys.prefix) / "tritonserver"  # inside the venv: `make test` installs it there
_WHEEL = "nvidia-pytriton"


def find_tritonserver(folder: Path | None = None) -> Path | None:
    """The unpacked server folder (with bin/tritonserver), from EDGE_TL_TRITONSERVER or the venv."""
    for candidate in (folder, os.environ.get("EDGE_TL_TRITONSERVER"), DEFAULT_DIR):
        if candidate and (Path(candidate) / "bin" / "tritonserver").is_file():
            return Path(candidate)
    return None


def install_tritonserver(dest: Path = DEFAULT_DIR) -> Path:
    """Download the nvidia-pytriton wheel (no dependencies) and unpack the server into `dest`."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, _WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with staged_folder(dest) as staging:
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.namelist():
                    for prefix, target in (
                        ("pytriton/tritonserver/", staging),
                        ("nvidia_pytriton.libs/", staging / "libs"),
                    ):
                        if member.startswith(prefix) and not member.endswith("/"):
                            path = target / member[len(prefix) :]
                            path.parent.mkdir(parents=True, exist_ok=True)
                            path.write_bytes(archive.read(member))
            stub = staging / "python_backend_stubs" / version / "triton_python_backend_stub"
            if not stub.is_file():
                raise EdgeTLError(f"{wheel.name}: no python backend stub for Python {version}")
            shutil.copy2(stub, staging / "backends" / "python" / stub.name)
            shutil.rmtree(staging / "python_backend_stubs")  # the other Pythons' stubs
            for binary in (
                staging / "bin" / "tritonserver",
                staging / "backends" / "python" / stub.name,
            ):
                binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            _install_python_packages(staging / "python")
    return dest


def _install_python_packages(target: Path) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        onnxruntime = f"onnxruntime=={version('onnxruntime')}"
    except PackageNotFoundError:
        onnxruntime = "onnxruntime"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts", "--target",
         str(target), "numpy<2", onnxruntime],
        check=True,
    )  # fmt: skip


def start_tritonserver(
    repo: Path,
    http_port: int,
    grpc_port: int,
    folder: Path | None = None,
    log_file: Path | None = None,
    timeout_s: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start `tritonserver --model-repository repo` and wait until it reports ready; an
    EdgeTLError with the end of its log when it cannot start."""
    server = find_tritonserver(folder)
    if server is None:
        raise EdgeTLError(
            "no tritonserver: run `python -m edge_tl.bench.triton_server --install` "
            "(or set EDGE_TL_TRITONSERVER to an unpacked server folder)"
        )
    env = os.environ.copy()
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(server / "libs"), env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["EDGE_TL_TRITON_SITE_PACKAGES"] = str(server / "python")
    log = log_file or Path(tempfile.mkstemp(prefix="tritonserver-", suffix=".log")[1])
    command = [
        str(server / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={server / 'backends'}",
        f"--cache-directory={server / 'caches'}",
        f"--http-port={http_port}",
        f"--grpc-port={grpc_port}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--allow-metrics=false",
        "--strict-readiness=true",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=1
            ) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.25)
    process.kill()
    process.wait()
    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
    raise EdgeTLError(f"tritonserver did not become ready ({log}): {' | '.join(tail)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", type=Path, nargs="?", const=DEFAULT_DIR, metavar="DIR")
    args = parser.parse_args()
    if args.install is None:
        found = find_tritonserver()
        print(found or "no tritonserver unpacked; use --install [DIR]")
        return 0 if found else 1
    print(install_tritonserver(args.install))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
