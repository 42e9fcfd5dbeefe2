"""``python -m service.stress``: the ``pushgate stress`` command on its own."""

from __future__ import annotations

import typer

from service.stress.cli import stress


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(stress)
    app()


if __name__ == "__main__":
    main()
