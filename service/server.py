"""Serving the app with uvicorn (``pushgate serve``): timeouts on slow clients, and a
``listening`` event only once the port is bound.

uvicorn times out idle keep-alive connections (``PUSHGATE_KEEP_ALIVE_SECONDS``) but has no
timeout on a request's headers: a client that opens a connection, or starts a request,
and then sends its headers slowly (or never) holds the connection for good. The protocol
below closes a connection whose request line and headers are not complete within
``PUSHGATE_HEADER_TIMEOUT_SECONDS`` of its first byte (or of the connection, for a client
that sends nothing). The body's deadline is ``BodyGuardMiddleware``'s
(``PUSHGATE_BODY_TIMEOUT_SECONDS``, answered 408). h11 bounds the headers' size (16 KiB by
default, ``h11_max_incomplete_event_size``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from service.settings import Settings


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers are late."""

    header_timeout_seconds = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a request has begun, or none yet: its headers are due
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(
                self.header_timeout_seconds, self._headers_late
            )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE:
            self.transport.close()


def protocol_class(header_timeout_seconds: float) -> type[HeaderTimeoutProtocol]:
    return type(
        "PushgateProtocol",
        (HeaderTimeoutProtocol,),
        {"header_timeout_seconds": header_timeout_seconds},
    )


class Server(uvicorn.Server):
    """Calls ``on_started`` once every socket is bound (after the app's lifespan started)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_started()


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration: our protocol, our logging (JSON or console, set up by
    ``service.logging``), no access log (each push logs one event)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(settings.header_timeout_seconds),
        timeout_keep_alive=settings.keep_alive_seconds,
        log_config=None,
        log_level="warning",  # its start-up chatter; pushgate logs `listening` itself
        access_log=False,
        server_header=False,
        lifespan="on",
    )
