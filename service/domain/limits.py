"""Bounds of every input the API takes, stated once.

The schemas (``service.api.schemas``), the tag routes and the domain's values check
against these before any lease is taken. Sizes are in bytes of UTF-8 unless named
otherwise. Nothing here imports a framework.

==================== ====================================================================
input                bound
==================== ====================================================================
repository           2-256 characters of ``REPOSITORY_RE`` (ECR's rule)
tag                  1-128 characters of ``TAG_RE`` (an OCI tag)
manifest             1 to 4,194,304 bytes (ECR's limit), a JSON object nested at most
                     ``MAX_JSON_DEPTH`` deep
media_type           at most 256 characters
sequence             0 to 2**63 - 1 (an int64 of any client; DynamoDB keeps 38 digits)
wait_seconds         0 to ``MAX_WAIT_SECONDS``, finite; the server's setting may lower it
caller               1-256 printable characters (``str.isprintable``: no control, format
                     or line-separator characters), also in ``X-Pushgate-Caller``
history limit        1-100 entries a page
history cursor       at most 2,048 characters of base64url, its JSON nested at most
                     ``MAX_JSON_DEPTH`` deep
==================== ====================================================================
"""

from __future__ import annotations

import re

REPOSITORY_RE = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
REPOSITORY_MIN, REPOSITORY_MAX = 2, 256
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
TAG_MAX = 128
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_MEDIA_TYPE_CHARS = 256
MAX_JSON_DEPTH = 32
MAX_SEQUENCE = 2**63 - 1
MAX_WAIT_SECONDS = 3600.0
MAX_CALLER_CHARS = 256
MAX_HISTORY_LIMIT = 100
MAX_CURSOR_CHARS = 2048
CURSOR_RE = re.compile(r"[A-Za-z0-9_=-]*")

# A JSON string, unrolled so that long strings cost one pass of the regex engine.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SQUARE = str.maketrans("{}", "[]")


def json_too_deep(text: str, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays and objects deeper than ``max_depth``.

    Runs before ``json.loads``, whose recursion a deep document would exhaust. Strings are
    dropped, then each pass removes the innermost bracket pairs: ``max_depth`` passes empty
    any document nested no deeper (unbalanced brackets count as too deep; the parser would
    refuse them anyway)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).translate(_SQUARE)
    too_many_opens = "[" * (max_depth + 1)
    for _ in range(max_depth):
        if too_many_opens in brackets:  # the common deep document: found in one scan
            return True
        if not brackets:
            return False
        shorter = brackets.replace("[]", "")
        if shorter == brackets:
            return True
        brackets = shorter
    return bool(brackets)


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8; lone surrogates count as the 3 bytes they would take."""
    return len(text.encode("utf-8", "surrogatepass"))


def printable(text: str) -> bool:
    """The caller rule: no control, format or separator characters other than space."""
    return text.isprintable()
