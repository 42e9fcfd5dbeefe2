"""A blob's body cut into ECR layer parts (``service.registry.parts``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from service.registry.parts import parts, read_ahead

PART = 10
MIN = 4


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _cut(chunks: list[bytes]) -> list[bytes]:
    return [part async for part in parts(_stream(chunks), part_size=PART, min_part=MIN)]


def _body(sizes: list[int]) -> list[bytes]:
    """Chunks of the given sizes whose bytes count up, so a reordering shows."""
    chunks, at = [], 0
    for size in sizes:
        chunks.append(bytes((at + i) % 251 for i in range(size)))
        at += size
    return chunks


chunk_sizes = st.lists(st.integers(min_value=0, max_value=35), max_size=12)


@given(chunk_sizes)
async def test_parts_join_to_the_body(sizes: list[int]) -> None:
    """The parts, joined, are the body's bytes in order, whatever the chunking."""
    chunks = _body(sizes)
    assert b"".join(chunks) == b"".join(await _cut(chunks))


@given(chunk_sizes)
async def test_every_part_but_the_last_is_part_size(sizes: list[int]) -> None:
    """Every part but the last is ``part_size`` long, as ECR's minimum asks."""
    cut = await _cut(_body(sizes))
    assert [PART] * len(cut[:-1]) == [len(part) for part in cut[:-1]]


@given(chunk_sizes)
async def test_the_last_part_holds_a_short_tail(sizes: list[int]) -> None:
    """The last part is at least ``min_part`` long unless it is the whole body, and at
    most ``part_size + min_part``: a short tail goes with the part before it."""
    chunks = _body(sizes)
    cut = await _cut(chunks)
    total = sum(sizes)
    if total == 0:
        assert [] == cut
    elif total < PART + MIN:
        assert [total] == [len(part) for part in cut]
    else:
        assert MIN <= len(cut[-1]) < PART + MIN


async def test_one_large_chunk_is_cut_into_parts() -> None:
    """A chunk longer than several parts is cut at part boundaries."""
    chunk = bytes(range(48))
    expected = [chunk[:10], chunk[10:20], chunk[20:30], chunk[30:40], chunk[40:]]
    assert expected == await _cut([chunk])


class _Source:
    """Parts produced on demand; records how many were pulled and whether it was closed."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pulled = 0
        self.closed = False

    async def items(self) -> AsyncGenerator[bytes, None]:
        try:
            for n in range(self.count):
                await asyncio.sleep(0)
                self.pulled += 1
                yield bytes([n])
        finally:
            self.closed = True


async def test_read_ahead_yields_every_item_in_order() -> None:
    """Every item of the source comes out, in order."""
    source = _Source(5)
    assert [bytes([n]) for n in range(5)] == [item async for item in read_ahead(source.items())]


async def test_read_ahead_reads_the_next_item_while_the_caller_works() -> None:
    """While the caller handles one item, the next is read (and no further)."""
    source = _Source(5)
    ahead = read_ahead(source.items())
    await anext(ahead)
    for _ in range(10):  # the caller awaits something else (ECR) meanwhile
        await asyncio.sleep(0)
    assert 2 == source.pulled
    await ahead.aclose()


async def test_read_ahead_stops_reading_when_the_caller_stops() -> None:
    """Closing the iterator early cancels the pending read and closes the source."""
    source = _Source(5)
    async with contextlib.aclosing(read_ahead(source.items())) as ahead:
        await anext(ahead)
    assert (True, 1) == (source.closed, source.pulled)
