"""service.codes is the one list of error codes: the domain, the API, the client, the CLI
and README.md agree with it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from service import codes
from service.api.errors import status_of
from service.cli_common import exit_code
from service.client import errors as client_errors
from service.client._base import api_error
from service.domain import errors as domain_errors

ROOT = Path(__file__).resolve().parents[2]
ANSWERED = [code for code in codes.CODES.values() if code.status is not None]
#: Where a code that no domain error carries is raised, by ``Code.source``.
SOURCES = {
    "auth": ROOT / "service/auth.py",
    "middleware": ROOT / "service/api/middleware.py",
    "api": ROOT / "service/api/errors.py",
    "client": ROOT / "service/client",
}


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


DOMAIN_CLASSES: list[type[domain_errors.PushError]] = sorted(
    _subclasses(domain_errors.PushError) | {domain_errors.PushError}, key=lambda c: c.__name__
)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("errors_table", ROOT / "scripts/errors_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cls", DOMAIN_CLASSES, ids=lambda c: c.__name__)
def test_every_domain_error_carries_a_code_of_the_table(cls: type[domain_errors.PushError]) -> None:
    """Each PushError class has a code the table defines, with the table's retryability."""
    assert cls.retryable == codes.code(cls.code).retryable


@pytest.mark.parametrize("cls", DOMAIN_CLASSES, ids=lambda c: c.__name__)
def test_api_answers_each_domain_error_with_the_table_status(
    cls: type[domain_errors.PushError],
) -> None:
    """The API's status for a domain error is its code's status in the table."""
    assert codes.code(cls.code).status == status_of(domain_errors.PushError.__new__(cls))


@pytest.mark.parametrize("code", list(codes.CODES.values()), ids=lambda c: c.name)
def test_every_code_has_a_source(code: codes.Code) -> None:
    """Each code is raised somewhere: a domain error carries it, the API answers it for
    the framework's status, or the module its source names contains it."""
    if code.source == "domain":
        assert code.name in {cls.code for cls in DOMAIN_CLASSES}
    elif code.source == "http":
        assert code in codes.BY_STATUS.values()
    else:
        path = SOURCES[code.source]
        files = [path] if path.is_file() else sorted(path.glob("*.py"))
        assert any(f'"{code.name}"' in file.read_text() for file in files)


@pytest.mark.parametrize("code", ANSWERED, ids=lambda c: c.name)
def test_client_maps_each_code_to_its_exception(code: codes.Code) -> None:
    """An answer with the code raises the client exception the table names."""
    assert code.status is not None
    response = httpx.Response(code.status, json={"error": code.name, "message": "m"})
    assert code.client == type(api_error(response)).__name__


@pytest.mark.parametrize("code", ANSWERED, ids=lambda c: c.name)
def test_client_exception_is_retryable_exactly_when_the_code_is(code: codes.Code) -> None:
    """A code's client exception is a ``Retryable`` exactly when the table says so."""
    cls = client_errors.BY_CODE[code.name]
    assert code.retryable == issubclass(cls, client_errors.Retryable)


@pytest.mark.parametrize("code", ANSWERED, ids=lambda c: c.name)
def test_cli_exits_with_the_table_exit_code(code: codes.Code) -> None:
    """The CLI exits with the code's exit code."""
    assert code.status is not None
    error = client_errors.error_class(code.status, code.name)(code.status, code.name, "m")
    assert code.exit == exit_code(error)


def test_unreachable_service_exits_with_its_code() -> None:
    """No answer at all exits with service_unreachable's exit code."""
    expected = codes.code("service_unreachable").exit
    assert expected == exit_code(client_errors.ServiceUnreachable("no answer"))


@pytest.mark.parametrize(
    ("status", "cls", "exit_with"),
    [
        (503, client_errors.ServiceUnavailable, codes.Exit.BUSY),
        (502, client_errors.RegistryFault, codes.Exit.REGISTRY),
        (404, client_errors.NotFound, codes.Exit.NOT_FOUND),
        (401, client_errors.Unauthorized, codes.Exit.UNAUTHORIZED),
        (500, client_errors.ServerError, codes.Exit.FAILED),
        (418, client_errors.InvalidRequest, codes.Exit.INVALID),
    ],
)
def test_unknown_code_maps_by_its_status(
    status: int, cls: type[client_errors.ApiError], exit_with: codes.Exit
) -> None:
    """A code the table lacks (a newer service, a proxy) maps by its status."""
    error = api_error(httpx.Response(status, json={"error": "brand_new", "message": "m"}))
    assert (cls, "brand_new", exit_with) == (type(error), error.code, exit_code(error))


def test_retryable_codes_answer_statuses_clients_retry() -> None:
    """Retryable codes answer 502/503/504, and 503 is only ever retryable: a permanent
    fault never invites a generic HTTP client to retry it."""
    retryable = {c.name for c in ANSWERED if c.retryable}
    assert [] == [c.name for c in ANSWERED if c.retryable and c.status not in {502, 503, 504}]
    assert [] == [c.name for c in ANSWERED if c.status == 503 and c.name not in retryable]


def test_every_exit_code_has_a_meaning() -> None:
    """README's exit-code table has a row for every exit code."""
    assert list(codes.Exit) == list(codes.EXIT_MEANINGS)


def test_readme_tables_are_current() -> None:
    """README.md's error and exit-code tables are the ones service.codes makes
    (regenerate with scripts/errors_table.py --write)."""
    content = (ROOT / "README.md").read_text()
    assert content == _script().rewritten(content)


def test_codes_and_client_errors_import_no_server_code() -> None:
    """service.codes and the client's errors load without FastAPI, pydantic or botocore,
    so the client install can use them."""
    probe = (
        "import sys, service.codes, service.client.errors\n"
        "heavy = {'fastapi', 'pydantic', 'botocore', 'aioboto3', 'service.domain'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "[]" == found.stdout.strip()
