"""An embedded moto server on 127.0.0.1 standing in for DynamoDB and ECR.

Used by ``pushgate serve --local`` and by the tests. moto's backends keep their
state in plain dicts with no lock, so two requests served by two threads can
interleave inside one "atomic" call: two conditional writes on one DynamoDB
item can both succeed, and concurrent ``put_image`` calls can leave one tag on
two images. Real AWS applies each call atomically. This server restores that
by applying one request at a time (a WSGI middleware holding a lock while the
backend runs); connections are still accepted and read concurrently.

Its ECR answers like ECR where pushgate relies on it (``service.localecr``; each moto
departure and its correction: docs/ecr.md).

Two of moto's costs grow where AWS's do not, and ``LocalAWS`` removes them:

- its dispatcher lists its package directory on every request to recognise a service
  name in the Host header (``moto.backends.list_of_moto_modules``: about a thousand
  ``stat`` calls, a quarter of a DynamoDB call's time); the list cannot change while the
  server runs, so it is computed once;
- ``TransactWriteItems`` deep-copies every table it touches, to roll back on failure:
  each transaction costs time in proportion to the tables' sizes, so a server that has
  recorded a few thousand pushes in history slows every push down. Since calls here are
  applied one at a time, a snapshot of the items the transaction names is enough: the
  tables are not copied, and on failure those items are put back as they were.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto import backends
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from service import localecr

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


_patch_lock = threading.Lock()
_patched: list[bool] = []  # once per process, as moto's backends are


def _patch_moto() -> None:
    """Remove moto's two growing costs and correct its ECR (``service.localecr``)."""
    with _patch_lock:
        if not _patched:
            _list_moto_modules_once()
            _transactions_copy_items_only()
            _patched.append(True)
    localecr.install()


def _list_moto_modules_once() -> None:
    modules = tuple(backends.list_of_moto_modules())

    def cached() -> tuple[str, ...]:
        return modules

    backends.list_of_moto_modules = cached


_Snapshot = tuple[Table, DynamoType, DynamoType | None, Any]


def _snapshot(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[_Snapshot]:
    """The items a transaction names, as they are now (None: absent)."""
    saved: list[_Snapshot] = []
    for entry in transact_items:
        try:
            op = next(iter(entry.values()))
            table = backend.tables[op["TableName"]]
            key = op.get("Key") or op["Item"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError, StopIteration, AttributeError):
            continue  # malformed: moto answers with its validation error
        saved.append(
            (table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)))
        )
    return saved


def _restore(saved: list[_Snapshot]) -> None:
    for table, hash_key, range_key, item in reversed(saved):
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is None:
            table.items[hash_key] = item
        else:
            table.items[hash_key][range_key] = item


def _transactions_copy_items_only() -> None:
    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = _snapshot(self, transact_items)
        tables = {id(table): table for table, *_ in saved}.values()
        for table in tables:  # moto's own backup of the table becomes the table itself
            setattr(table, "__deepcopy__", lambda _memo, table=table: table)  # noqa: B010
        try:
            original(self, transact_items)
        except BaseException:
            _restore(saved)
            raise
        finally:
            for table in tables:
                delattr(table, "__deepcopy__")

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _OneAtATime:
    """WSGI middleware: each request runs alone in the backend, as one AWS call. The lock
    is shared by every server of the process, as moto's backends are."""

    _lock = threading.Lock()

    def __init__(self, app: WSGIApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One line per AWS call drowns the service's own logs."""


class LocalAWS(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose calls are atomic. ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)

    def _server_entry(self) -> None:
        _patch_moto()
        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, threaded=True, request_handler=_QuietHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def serve_until_interrupted(self) -> None:
        """Block this thread while the server runs; stop it on Ctrl-C or SIGINT."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.stop()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def main() -> None:
    """``python -m service.localaws [--host H] [--port P]``: serve until interrupted."""
    import argparse  # noqa: PLC0415 - only the standalone server parses arguments

    parser = argparse.ArgumentParser(description="moto server whose AWS calls are atomic")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    server = LocalAWS(args.host, args.port)
    server.start()
    print(f"moto (atomic calls) listening on {server.endpoint}", flush=True)  # noqa: T201
    server.serve_until_interrupted()


if __name__ == "__main__":
    main()
