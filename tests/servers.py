"""Servers the tests talk to over HTTP on 127.0.0.1: moto (LocalAWS) and dynalite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def dynalite_binary() -> str | None:
    """The dynalite CLI installed by ./run.sh test, or None (with node missing)."""
    if shutil.which("node") is None:
        return None
    candidates = [
        os.environ.get("PUSHGATE_DYNALITE"),
        str(ROOT / ".cache/node/node_modules/.bin/dynalite"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    return None


@contextmanager
def dynalite() -> Iterator[str]:
    """Start dynalite on a free port of 127.0.0.1, in memory; yields its endpoint."""
    binary = dynalite_binary()
    if binary is None:
        raise RuntimeError("dynalite is not installed (run ./run.sh test, which installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
