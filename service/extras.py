"""Which install extra each CLI command needs, and the one sentence it prints when missing.

The base install (``pip install pushgate``) is the client and its commands; ``server`` adds
what ``pushgate serve`` and ``init`` import, ``local`` adds moto for ``serve --local`` and
``stress`` (pyproject.toml; a test keeps :data:`MODULES` in step with it). A command checks
its extra before importing anything of it, so a build agent's install answers with what to
install rather than a traceback.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import typer

Extra = Literal["server", "local"]

# the import names of each extra's direct dependencies; `local` includes `server`
SERVER_MODULES = (
    "fastapi",
    "uvicorn",
    "pydantic",
    "pydantic_settings",
    "aioboto3",
    "boto3",
    "pynamodb",
    "structlog",
    "prometheus_client",
    "joserfc",
)
MODULES: dict[Extra, tuple[str, ...]] = {
    "server": SERVER_MODULES,
    "local": (*SERVER_MODULES, "moto"),
}

# exit status of a command whose extra is not installed (the CLI's "invalid input")
MISSING_EXTRA_EXIT = 2


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package or an import hook refused it
        return False


def missing_modules(extra: Extra) -> list[str]:
    """The modules of ``extra`` this interpreter cannot import."""
    return [name for name in MODULES[extra] if not _installed(name)]


def sentence(command: str, extra: Extra) -> str:
    return f"{command} needs the {extra} extra: pip install 'pushgate[{extra}]'"


def extra_providing(module: str) -> Extra | None:
    """The smallest extra that installs the top-level package of ``module``, if any."""
    top = module.partition(".")[0]
    smallest_first: tuple[Extra, ...] = ("server", "local")
    for extra in smallest_first:
        if top in MODULES[extra]:
            return extra
    return None


def require(extra: Extra, command: str) -> None:
    """Exit with :func:`sentence` on stderr when ``extra`` is not installed."""
    if missing_modules(extra):
        typer.echo(sentence(command, extra), err=True)
        raise typer.Exit(MISSING_EXTRA_EXIT)
