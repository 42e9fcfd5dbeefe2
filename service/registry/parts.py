"""A request body cut into ECR layer parts as it streams in.

ECR takes parts of at most 20 MiB and refuses (at completion) any part but the last under
5 MiB. Parts here are ``part_size`` (5 MiB) long; the tail of a body is sent with the
part before it when it would be under 5 MiB, so a part is at most ``part_size + 5 MiB``.

Memory is what bounds concurrent uploads: while a part is sent, botocore holds it, its
base64 text in a JSON body (4/3 of it) and, when ECR reads slower than the event loop
writes, the socket's buffered copy of that body; meanwhile the next part comes in
(``read_ahead``). With parts of 5 MiB an upload holds about 30 MiB whatever the blob's
size (``bench/registry_bench.py``). The body is kept as the chunks received (a list,
joined once per part): a growing ``bytearray`` would keep its largest capacity and copy
each part twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import AsyncGenerator, AsyncIterator

from service.registry.protocol import MIN_CHUNK

PART_SIZE = MIN_CHUNK
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's default, made fixed


def give_back_freed_parts() -> None:
    """Return the memory of freed parts to the system at once (glibc).

    A part, its base64 text and its JSON body are blocks of a few MiB. glibc's malloc
    raises its mmap threshold to the largest mapped block freed, so after the first part
    such blocks come from the heap, where freed ones stay in the process's RSS and
    fragment it: four concurrent uploads then kept half as much again as they used. A
    fixed threshold keeps every large block mapped, unmapped when freed (at the cost of
    faulting its pages in anew). A no-op without glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


async def parts(
    body: AsyncIterator[bytes], *, part_size: int = PART_SIZE, min_part: int = MIN_CHUNK
) -> AsyncGenerator[bytes, None]:
    """Parts of the body in order: each ``part_size`` long but the last, which holds the
    rest (from 1 byte when the whole body is that small, to ``part_size + min_part``).
    An empty body yields nothing."""
    held: list[bytes] = []
    size = 0
    async for chunk in body:
        held.append(chunk)
        size += len(chunk)
        while size >= part_size + min_part:
            part, held = _cut(held, part_size)
            size -= part_size
            yield part
    if size:
        yield b"".join(held)


def _cut(held: list[bytes], size: int) -> tuple[bytes, list[bytes]]:
    """The first ``size`` bytes of ``held`` (one copy), and the chunks after them."""
    taken = 0
    for index, chunk in enumerate(held):
        if taken + len(chunk) >= size:
            split = size - taken
            rest = [chunk[split:]] if split < len(chunk) else []
            return b"".join([*held[:index], chunk[:split]]), rest + held[index + 1 :]
        taken += len(chunk)
    raise ValueError("fewer bytes held than the part's size")  # callers hold enough


async def read_ahead(source: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """The items of ``source``, the next one read while the caller handles the current:
    the request body keeps coming in while a part goes to ECR. One item is held ahead;
    ``source`` is closed when the caller stops."""
    pending = asyncio.create_task(_next(source))
    try:
        while (item := await pending) is not None:
            pending = asyncio.create_task(_next(source))
            yield item
    finally:  # the caller stopped early (an error): stop reading, drop what was read
        pending.cancel()
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # seen: the caller's own error is the one raised
        await source.aclose()


async def _next(source: AsyncGenerator[bytes, None]) -> bytes | None:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return None
