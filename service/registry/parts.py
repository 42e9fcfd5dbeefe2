"""A request body cut into ECR layer parts as it streams in.

ECR takes parts of at most 20 MiB and refuses (at completion) any part but the last under
5 MiB. Parts here are ``part_size`` (10 MiB) long; the tail of a body is sent with the
part before it when it would be under 5 MiB, so a part is at most ``part_size + 5 MiB``
(15 MiB) and memory per upload stays under two parts whatever the blob's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from service.registry.protocol import MIN_CHUNK

PART_SIZE = 10 * 1024 * 1024


async def parts(
    body: AsyncIterator[bytes], *, part_size: int = PART_SIZE, min_part: int = MIN_CHUNK
) -> AsyncIterator[bytes]:
    """Parts of the body in order: each ``part_size`` long but the last, which holds the
    rest (from 1 byte when the whole body is that small, to ``part_size + min_part``).
    An empty body yields nothing."""
    buffer = bytearray()
    async for chunk in body:
        buffer += chunk
        while len(buffer) >= part_size + min_part:
            part = bytes(buffer[:part_size])
            del buffer[:part_size]
            yield part
    if buffer:
        yield bytes(buffer)
