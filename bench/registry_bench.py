"""The registry front door's blob uploads: throughput through pushgate against the same
bytes sent straight to ECR's layer API, and pushgate's memory under concurrent uploads,
measured in one run against one moto server.

    .venv/bin/python bench/registry_bench.py [--sizes 64,256] [--repeats 5] [--quick]

``--quick`` uploads 16 and 64 MiB twice each and runs the memory phase with 64 MiB blobs.
Everything listens on 127.0.0.1 only; the run prints ratios measured in it.

Set-up
------

- AWS: ``service.localaws`` (moto, one AWS call at a time, its layer upload corrected by
  ``service.locallayers``) in a child process.
- pushgate: ``pushgate serve`` in its own process (so its memory can be read), pointed at
  that moto by ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_ECR``; tables and the
  repository made first by ``pushgate init``. Auth open, logs at ``warning``.
- through pushgate: ``POST /v2/<name>/blobs/uploads/``, one ``PATCH`` streaming the blob
  (1 MiB writes, ``Content-Length`` and ``Content-Range`` set), ``PUT ?digest=``; an httpx
  client in this process.
- direct: aioboto3 in this process, with pushgate's own ECR client configuration:
  ``InitiateLayerUpload``, ``UploadLayerPart`` in pushgate's part sizes
  (``service.registry.parts.PART_SIZE``, the tail merged into the last part),
  ``CompleteLayerUpload``.

Every blob is distinct (a random 32-byte head on shared random bytes), so ECR never
answers "already exists". Throughput is bytes over the wall time from the first call to
the answer of the last; the two paths alternate (direct first on odd repetitions) and
the ratio is of the medians.

Phases
------

1. throughput for each size: MB/s (10^6 bytes/s) direct and through pushgate, and the
   ratio (goal >= 0.8); then the CPU seconds per GB each process spent on each path
   (``/proc/<pid>/stat`` for pushgate and moto, ``time.process_time`` for this one),
   which the machine's other load does not change as much as it changes wall time;
2. memory: ``--concurrent`` (4) uploads of ``--concurrent-size`` (256) MiB at once
   through pushgate; the pushgate process's RSS (``/proc/<pid>/status`` VmRSS, or
   psutil when installed) sampled every 5 ms, and its VmHWM (peak RSS, reset through
   ``/proc/<pid>/clear_refs`` before the phase); idle is the RSS just before. Goal: peak
   <= idle + 200 MB. moto's memory (it holds the bytes) is not counted.

Every upload is bounded by ``--timeout`` seconds and the run by ``--max-seconds``.

What bounds the figures
-----------------------

moto: it parses each UploadLayerPart's JSON body once per parameter (six times) and
base64-decodes the part, about 15 s of CPU per GB, more than pushgate's or the client's
share, and applies one call at a time. Through pushgate the body is also received over
HTTP (uvicorn's h11 parser: the largest share of pushgate's CPU in a profile, then the
base64, signing's SHA-256 and copying chunks into parts). When every core is busy, the
throughput ratio follows the ratio of CPU per GB of the two paths; with idle cores, the
read-ahead overlaps pushgate's receiving with the ECR call. On a shared machine the
wall-clock ratio varies by about +-0.15 between runs: read the CPU lines beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Self

import aioboto3
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.adapters.aws import ecr_config
from service.registry.parts import PART_SIZE
from service.registry.protocol import MIN_CHUNK
from service.settings import Settings
from tests.servers import free_port, wait_for_port

MiB = 1024 * 1024
MB = 1_000_000
REGION = "us-east-1"
REPOSITORY = "bench/blobs"
WRITE = MiB  # the client's write size
HEAD = 32  # distinct bytes at the start of each blob
PUSHGATE = [sys.executable, "-c", "from service.cli import main; main()"]

# The child process: moto (LocalAWS, its ECR corrected).
AWS_CHILD = """
import sys
sys.path.insert(0, {root!r})
from service.localaws import LocalAWS
server = LocalAWS("127.0.0.1", {port})
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the bench closes our stdin
server.stop()
"""


@contextlib.contextmanager
def local_aws() -> Iterator[tuple[str, int]]:
    """LocalAWS in a child process: (endpoint, pid)."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", AWS_CHILD.format(root=str(ROOT), port=port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", child.pid
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


def pushgate_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHGATE_", "AWS_"))}
    suffix = uuid.uuid4().hex[:8]
    env.update(
        PYTHONPATH=str(ROOT),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto accepts any
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ENDPOINT_URL_ECR=endpoint,
        PUSHGATE_LEASE_TABLE=f"bench-leases-{suffix}",
        PUSHGATE_HISTORY_TABLE=f"bench-history-{suffix}",
        PUSHGATE_BUDGET_TABLE=f"bench-budget-{suffix}",
        PUSHGATE_LOG_LEVEL="warning",
        PUSHGATE_LOG_FORMAT="console",
    )
    return env


@contextlib.contextmanager
def pushgate(endpoint: str) -> Iterator[tuple[str, int]]:
    """``pushgate init`` then ``pushgate serve`` in a child process: (URL, pid)."""
    env = pushgate_env(endpoint)
    subprocess.run(
        [*PUSHGATE, "init", "--repository", REPOSITORY],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    port = free_port()
    child = subprocess.Popen(
        [*PUSHGATE, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/", timeout=2).status_code == 200:
                    break
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pushgate serve did not start")
            time.sleep(0.1)
        yield url, child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


class Blob:
    """``size`` bytes: a random head of its own on the run's shared random bytes."""

    def __init__(self, shared: bytes, size: int) -> None:
        self.shared = shared
        self.size = size
        self.head = os.urandom(HEAD)
        digest = hashlib.sha256(self.head)
        digest.update(memoryview(shared)[HEAD:size])
        self.digest = "sha256:" + digest.hexdigest()

    def piece(self, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (end excluded)."""
        if start >= HEAD:
            return self.shared[start:end]
        return self.head[start:end] + self.shared[HEAD:end]

    async def writes(self) -> AsyncIterator[bytes]:
        for start in range(0, self.size, WRITE):
            yield self.piece(start, min(start + WRITE, self.size))

    def part_bounds(self) -> list[tuple[int, int]]:
        """pushgate's parts (``service.registry.parts``): PART_SIZE each, the tail
        merged into the last when it would be under MIN_CHUNK."""
        bounds, start = [], 0
        while self.size - start >= PART_SIZE + MIN_CHUNK:
            bounds.append((start, start + PART_SIZE))
            start += PART_SIZE
        if start < self.size:
            bounds.append((start, self.size))
        return bounds


async def through_pushgate(client: httpx.AsyncClient, url: str, blob: Blob) -> None:
    started = await client.post(f"{url}/v2/{REPOSITORY}/blobs/uploads/")
    if started.status_code != 202:
        raise RuntimeError(f"POST: {started.status_code} {started.text[:300]}")
    location = httpx.URL(url).join(started.headers["location"])
    patched = await client.patch(
        location,
        content=blob.writes(),
        headers={
            "content-type": "application/octet-stream",
            "content-length": str(blob.size),
            "content-range": f"0-{blob.size - 1}",
        },
    )
    if patched.status_code != 202:
        raise RuntimeError(f"PATCH: {patched.status_code} {patched.text[:300]}")
    location = httpx.URL(url).join(patched.headers["location"])
    closed = await client.put(location, params={"digest": blob.digest})
    if closed.status_code != 201:
        raise RuntimeError(f"PUT: {closed.status_code} {closed.text[:300]}")


async def direct(ecr: Any, blob: Blob) -> None:
    upload = await ecr.initiate_layer_upload(repositoryName=REPOSITORY)
    upload_id = upload["uploadId"]
    for start, end in blob.part_bounds():
        await ecr.upload_layer_part(
            repositoryName=REPOSITORY,
            uploadId=upload_id,
            partFirstByte=start,
            partLastByte=end - 1,
            layerPartBlob=blob.piece(start, end),
        )
    await ecr.complete_layer_upload(
        repositoryName=REPOSITORY, uploadId=upload_id, layerDigests=[blob.digest]
    )


async def timed(coro: Any, timeout: float) -> float:
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        await coro
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds spent by this process (the client), pushgate and moto over a block."""

    def __init__(self, pushgate: int, moto: int) -> None:
        self.pids = {"pushgate": pushgate, "moto": moto}
        self.spent = {"client": 0.0, "pushgate": 0.0, "moto": 0.0}

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        client = time.process_time()
        try:
            yield
        finally:
            self.spent["client"] += time.process_time() - client
            for name, pid in self.pids.items():
                self.spent[name] += cpu_seconds(pid) - before[name]

    def per_gb(self, size: int) -> dict[str, float]:
        return {name: seconds / size * 1e9 for name, seconds in self.spent.items()}


# --- memory of the pushgate process


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def rss(pid: int) -> int:
    try:
        import psutil  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        return _status(pid)["VmRSS"]


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler:
    """The RSS of ``pid`` every ``interval`` seconds in a thread: the highest seen."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- phases


def mbps(size: int, seconds: float) -> float:
    return size / seconds / MB


async def throughput(
    url: str, ecr: Any, shared: bytes, sizes: list[int], args: argparse.Namespace
) -> list[float]:
    print("\n1. blob upload throughput (MB/s = 10^6 bytes/s)", flush=True)
    header = f"{'size':>8} {'direct MB/s':>24} {'pushgate MB/s':>24} {'ratio':>6}"
    print(header)
    ratios = []
    direct_cpu, gate_cpu = (
        Cpu(args.pushgate_pid, args.moto_pid),
        Cpu(args.pushgate_pid, args.moto_pid),
    )
    repeats, timeout = args.repeats, args.timeout
    async with httpx.AsyncClient(timeout=timeout) as client:
        await through_pushgate(client, url, Blob(shared, 6 * MiB))  # warm both paths up
        await direct(ecr, Blob(shared, 6 * MiB))
        for size in sizes:
            direct_s: list[float] = []
            gate_s: list[float] = []
            for n in range(repeats):
                blobs = Blob(shared, size), Blob(shared, size)
                runs = [
                    (direct_s, direct_cpu, direct(ecr, blobs[0])),
                    (gate_s, gate_cpu, through_pushgate(client, url, blobs[1])),
                ]
                for into, cpu, coro in runs if n % 2 == 0 else reversed(runs):
                    with cpu.measure():
                        into.append(await timed(coro, timeout))
            d = [mbps(size, s) for s in direct_s]
            g = [mbps(size, s) for s in gate_s]
            ratio = statistics.median(g) / statistics.median(d)
            ratios.append(ratio)
            print(
                f"{size // MiB:>5} MiB {_runs(d):>24} {_runs(g):>24} {ratio:>6.2f}",
                flush=True,
            )
    total = sum(sizes) * repeats
    print("   CPU seconds per GB uploaded (client = this process: the direct client, or the")
    print("   HTTP client that feeds pushgate):")
    for name, cpu in (("direct", direct_cpu), ("pushgate", gate_cpu)):
        spent = cpu.per_gb(total)
        parts = ", ".join(
            f"{who} {seconds:.1f}" for who, seconds in spent.items() if seconds > 0.05
        )
        print(f"   {name:>9}: {sum(spent.values()):.1f} ({parts})")
    return ratios


def _runs(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


async def memory(
    url: str, pid: int, shared: bytes, size: int, concurrent: int, timeout: float
) -> float:
    print(f"\n2. pushgate memory, {concurrent} uploads of {size // MiB} MiB at once", flush=True)
    blobs = [Blob(shared, size) for _ in range(concurrent)]
    await asyncio.sleep(1.0)
    idle = statistics.median([rss(pid) for _ in range(5)])
    hwm_reset = reset_peak(pid)
    async with httpx.AsyncClient(timeout=timeout) as client:
        with Sampler(pid) as sampler:
            started = time.perf_counter()
            await asyncio.gather(*(timed(through_pushgate(client, url, b), timeout) for b in blobs))
            elapsed = time.perf_counter() - started
    peak = sampler.peak
    line = (
        f"   idle {idle / MB:.0f} MB, peak sampled {peak / MB:.0f} MB ({sampler.samples} samples)"
    )
    if hwm_reset:
        hwm = _status(pid).get("VmHWM", 0)
        peak = max(peak, hwm)
        line += f", VmHWM {hwm / MB:.0f} MB"
    print(line)
    delta = (peak - idle) / MB
    print(
        f"   peak - idle = {delta:.0f} MB (goal <= 200); "
        f"aggregate {mbps(size * concurrent, elapsed):.0f} MB/s over {elapsed:.1f} s",
        flush=True,
    )
    return delta


async def run(args: argparse.Namespace, url: str, pid: int, endpoint: str) -> None:
    sizes = [int(s) * MiB for s in args.sizes.split(",")]
    shared = os.urandom(max([*sizes, args.concurrent_size * MiB]))
    settings = Settings(region=REGION, ecr_endpoint_url=endpoint)
    session = aioboto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any
        region_name=REGION,
    )
    async with session.client("ecr", endpoint_url=endpoint, config=ecr_config(settings)) as ecr:
        ratios = await throughput(url, ecr, shared, sizes, args)
    delta = await memory(
        url, pid, shared, args.concurrent_size * MiB, args.concurrent, args.timeout
    )
    print("\nsummary")
    for size, ratio in zip(sizes, ratios, strict=True):
        verdict = "ok" if ratio >= 0.8 else "MISSED"
        print(f"   throughput {size // MiB} MiB: {ratio:.2f}x direct (goal >= 0.8) {verdict}")
    verdict = "ok" if delta <= 200 else "MISSED"
    print(f"   memory: +{delta:.0f} MB over idle (goal <= 200) {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,256", help="blob sizes in MiB, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--concurrent-size", type=int, default=256, help="MiB")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per upload")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="for the whole run")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.concurrent_size = "16,64", 2, 64
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; part size {PART_SIZE // MiB} MiB"
    )
    with local_aws() as (endpoint, args.moto_pid), pushgate(endpoint) as (url, pid):
        print(f"moto at {endpoint}; pushgate serve (pid {pid}) at {url}", flush=True)
        args.pushgate_pid = pid

        async def bounded() -> None:
            async with asyncio.timeout(args.max_seconds):
                await run(args, url, pid, endpoint)

        asyncio.run(bounded())


if __name__ == "__main__":
    main()
