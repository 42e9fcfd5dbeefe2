"""How the CLI prints what the server sends: plain text with control characters escaped."""

from __future__ import annotations

import pytest

from service.cli_common import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("ci-bot", "ci-bot"),
        ("[/bold] [link=https://x.example]me[/link]", "[/bold] [link=https://x.example]me[/link]"),
        ("a\x1b[2Kb", "a\\x1b[2Kb"),
        ("row\nforged row\r", "row\\x0aforged row\\x0d"),
        ("bell\x07 del\x7f csi\x9b", "bell\\x07 del\\x7f csi\\x9b"),
        ("left\u202eright", "left\\u202eright"),
        ("café ✓", "café ✓"),
    ],
)
def test_printable_escapes_control_characters_only(raw: str, shown: str) -> None:
    """C0, DEL, C1 and bidirectional controls become visible escapes; markup-like
    text and other characters are kept as they are."""
    assert shown == printable(raw)
