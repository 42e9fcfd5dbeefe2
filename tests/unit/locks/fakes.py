"""Test helpers for the lease core: a tiny in-memory DynamoDB and flow drivers.

``FakeTable`` evaluates the *text* of the requests the protocol builds with a
small parser for the subset of DynamoDB's expression language they use
(``attribute_exists``, ``attribute_not_exists``, comparisons, AND/OR/NOT,
parentheses; ``SET`` with ``if_not_exists`` and ``+``/``-``, ``REMOVE``, ``ADD`` and
``DELETE`` of number sets). It
rejects what DynamoDB rejects: unused or undefined placeholders. Because it
interprets the expressions instead of trusting the builder's intent, a wrong
clause in ``_protocol`` shows up as wrong behaviour here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from locks._models import (
    CLEANUP_AT,
    EXPIRES_AT,
    FREED_AT,
    GRANTED_AT,
    HELD_MS,
    OWNER,
    PK,
    QUEUE_GONE,
    QUEUE_NEXT,
    QUEUE_SERVED,
    TOKEN,
    LockConfig,
)
from locks._protocol import Call, ConditionFailed

TABLE = "leases"
KEY = "repo:tag"
ME = "me"
OTHER = "other"
T0 = 1_700_000_000_000.0  # an epoch-ms clock reading
# the timings the protocol's unit tests share: skew 1 s, cap 0.25 s, claim 2 s
CONFIG = LockConfig(
    lease_seconds=10,
    max_clock_skew_seconds=1,
    retry_base_seconds=0.02,
    retry_cap_seconds=0.25,
    claim_seconds=2.0,
)

Item = dict[str, dict[str, Any]]


class InvalidRequest(AssertionError):
    """DynamoDB would answer ValidationException."""


# --- DynamoDB JSON helpers ---------------------------------------------------


def item(
    *,
    owner: str | None = OTHER,
    token: int | None = 5,
    expires_at: float | None = None,
    granted_at: float | None = None,
    held_ms: float | None = None,
    freed_at: float | None = None,
    queue_next: int | None = None,
    queue_served: int | None = None,
    queue_gone: tuple[int, ...] = (),
    cleanup_at: int | None = None,
    key: str = KEY,
) -> Item:
    """A lease item in DynamoDB JSON; ``None`` (or no gone numbers) leaves an attribute out."""
    result: Item = {PK: {"S": key}}
    if owner is not None:
        result[OWNER] = {"S": owner}
    if token is not None:
        result[TOKEN] = {"N": str(token)}
    if expires_at is not None:
        result[EXPIRES_AT] = {"N": str(int(expires_at))}
    for name, value in (
        (GRANTED_AT, granted_at),
        (HELD_MS, held_ms),
        (FREED_AT, freed_at),
        (QUEUE_NEXT, queue_next),
        (QUEUE_SERVED, queue_served),
    ):
        if value is not None:
            result[name] = {"N": str(int(value))}
    if queue_gone:
        result[QUEUE_GONE] = {"NS": [str(n) for n in sorted(queue_gone)]}
    if cleanup_at is not None:
        result[CLEANUP_AT] = {"N": str(cleanup_at)}
    return result


HELD = item(owner=OTHER, token=5, expires_at=T0 + 60_000)  # held by another for a minute


def number(value: Item | None, name: str) -> int | None:
    if value is None or name not in value:
        return None
    return int(value[name]["N"])


# --- expression evaluation ---------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(<>|<=|>=|[()=<>,+-]|#\w+|:\w+|[A-Za-z_]\w*)")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise InvalidRequest(f"cannot parse {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, names: dict[str, str], values: dict[str, Any]) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.names = names
        self.values = values
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()

    # token stream
    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected.upper()):
            raise InvalidRequest(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def done(self) -> None:
        if self.peek() is not None:
            raise InvalidRequest(f"trailing {self.peek()!r}")

    def name(self) -> str:
        token = self.take()
        if not token.startswith("#"):
            raise InvalidRequest(f"expected a #name, got {token!r}")
        if token not in self.names:
            raise InvalidRequest(f"undefined name {token}")
        self.used_names.add(token)
        return self.names[token]

    def value(self) -> dict[str, str]:
        token = self.take()
        if token not in self.values:
            raise InvalidRequest(f"undefined value {token}")
        self.used_values.add(token)
        return dict(self.values[token])

    # conditions: a tree of closures over the item
    def condition(self) -> Any:
        left = self.conjunction()
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self.conjunction()
            left = _either(left, right)
        return left

    def conjunction(self) -> Any:
        left = self.negation()
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self.negation()
            left = _both(left, right)
        return left

    def negation(self) -> Any:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            inner = self.negation()
            return lambda it: not inner(it)
        return self.primary()

    def primary(self) -> Any:
        token = self.peek()
        if token == "(":
            self.take("(")
            inner = self.condition()
            self.take(")")
            return inner
        if token in {"attribute_exists", "attribute_not_exists"}:
            self.take()
            self.take("(")
            attr = self.name()
            self.take(")")
            exists = token == "attribute_exists"
            return lambda it: (it is not None and attr in it) == exists
        left = self.operand()
        op = self.take()
        if op not in {"=", "<>", "<", "<=", ">", ">="}:
            raise InvalidRequest(f"unknown comparator {op!r}")
        right = self.operand()
        return lambda it: _compare(left(it), op, right(it))

    def operand(self) -> Any:
        token = self.peek()
        if token is not None and token.startswith("#"):
            attr = self.name()
            return lambda it: None if it is None else it.get(attr)
        constant = self.value()
        return lambda it: constant

    # updates
    def update(self) -> Any:
        actions: list[Any] = []
        while self.peek() is not None:
            clause = self.take().upper()
            if clause == "SET":
                actions.extend(self.list_of(self.assignment))
            elif clause == "REMOVE":
                actions.extend(self.list_of(self.removal))
            elif clause in {"ADD", "DELETE"}:
                actions.extend(self.list_of(lambda clause=clause: self.set_change(clause)))
            else:
                raise InvalidRequest(f"unknown update clause {clause!r}")

        def apply(old: Item | None, key: Item) -> Item:
            new = copy.deepcopy(old) if old is not None else copy.deepcopy(key)
            for action in actions:
                action(old, new)
            return new

        return apply

    def list_of(self, parse: Any) -> list[Any]:
        result = [parse()]
        while self.peek() == ",":
            self.take(",")
            result.append(parse())
        return result

    def assignment(self) -> Any:
        target = self.name()
        self.take("=")
        rhs = self.term()
        if self.peek() in {"+", "-"}:
            sign = self.take()
            other = self.term()
            first = rhs

            def rhs(it: Item | None) -> dict[str, str]:
                a, b = Decimal(first(it)["N"]), Decimal(other(it)["N"])
                return {"N": str(a + b if sign == "+" else a - b)}

        def action(old: Item | None, new: Item) -> None:
            new[target] = rhs(old)

        return action

    def term(self) -> Any:
        if self.peek() == "if_not_exists":
            self.take()
            self.take("(")
            attr = self.name()
            self.take(",")
            default = self.value()
            self.take(")")
            return lambda it: it[attr] if it is not None and attr in it else default
        token = self.peek()
        if token is not None and token.startswith("#"):
            attr = self.name()

            def read(it: Item | None) -> dict[str, str]:
                if it is None or attr not in it:
                    raise InvalidRequest(f"{attr} does not exist in the item")
                return it[attr]

            return read
        constant = self.value()
        return lambda it: constant

    def set_change(self, clause: str) -> Any:
        """``ADD #set :values`` / ``DELETE #set :values`` on a number set (an emptied
        set disappears, as in DynamoDB)."""
        attr = self.name()
        given = self.value()
        if list(given) != ["NS"]:
            raise InvalidRequest(f"{clause} takes a number set here, got {given!r}")
        change = {Decimal(n) for n in given["NS"]}

        def action(old: Item | None, new: Item) -> None:
            have = {Decimal(n) for n in (new.get(attr) or {}).get("NS", [])}
            have = have | change if clause == "ADD" else have - change
            if have:
                new[attr] = {"NS": [str(n) for n in sorted(have)]}
            else:
                new.pop(attr, None)

        return action

    def removal(self) -> Any:
        attr = self.name()

        def action(old: Item | None, new: Item) -> None:
            new.pop(attr, None)

        return action


def _either(a: Any, b: Any) -> Any:
    return lambda it: a(it) or b(it)


def _both(a: Any, b: Any) -> Any:
    return lambda it: a(it) and b(it)


def _compare(left: dict[str, str] | None, op: str, right: dict[str, str] | None) -> bool:
    if left is None or right is None:
        return False  # DynamoDB: a comparison with a missing attribute is false
    (ltype, lval), (rtype, rval) = next(iter(left.items())), next(iter(right.items()))
    if ltype != rtype:
        return op == "<>"
    a: Any = Decimal(lval) if ltype == "N" else lval
    b: Any = Decimal(rval) if rtype == "N" else rval
    return bool(
        {
            "=": a == b,
            "<>": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    )


@dataclass
class Compiled:
    condition: Any
    update: Any


def compile_request(params: dict[str, Any]) -> Compiled:
    """Parse an UpdateItem request; raises InvalidRequest like DynamoDB would."""
    names = params.get("ExpressionAttributeNames", {})
    values = params.get("ExpressionAttributeValues", {})
    parser = _Parser(params["UpdateExpression"], names, values)
    update = parser.update()
    parser.done()
    used_names, used_values = set(parser.used_names), set(parser.used_values)
    condition = None
    if "ConditionExpression" in params:
        parser = _Parser(params["ConditionExpression"], names, values)
        condition = parser.condition()
        parser.done()
        used_names |= parser.used_names
        used_values |= parser.used_values
    if used_names != set(names):
        raise InvalidRequest(f"unused names {set(names) - used_names}")
    if used_values != set(values):
        raise InvalidRequest(f"unused values {set(values) - used_values}")
    return Compiled(condition, update)


def condition_holds(call: Call, current: Item | None) -> bool:
    """Whether DynamoDB would accept ``call`` against ``current`` (None: no item)."""
    compiled = compile_request(call.params)
    return bool(compiled.condition is None or compiled.condition(current))


class FakeTable:
    """One DynamoDB table in memory, answering the protocol's calls.

    ``all_old=False`` acts like a backend that ignores
    ``ReturnValuesOnConditionCheckFailure`` (dynalite): failures carry no item.
    """

    def __init__(self, *, all_old: bool = True) -> None:
        self.items: dict[str, Item] = {}
        self.all_old = all_old
        self.calls: list[Call] = []

    def get(self, key: str = KEY) -> Item | None:
        return copy.deepcopy(self.items.get(key))

    def put(self, value: Item) -> None:
        self.items[value[PK]["S"]] = copy.deepcopy(value)

    def delete(self, key: str = KEY) -> None:
        del self.items[key]

    def execute(self, call: object) -> Any:
        assert isinstance(call, Call), call
        self.calls.append(call)
        params = call.params
        key = params["Key"][PK]["S"]
        if call.op == "get_item":
            found = self.get(key)
            return {} if found is None else {"Item": found}
        assert call.op == "update_item", call.op
        compiled = compile_request(params)
        old = self.items.get(key)
        if compiled.condition is not None and not compiled.condition(old):
            wants_old = params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            if wants_old and self.all_old and old is not None:
                return ConditionFailed(copy.deepcopy(old))
            return ConditionFailed(None)
        new = compiled.update(old, {PK: {"S": key}})
        self.items[key] = new
        if params.get("ReturnValues") == "ALL_NEW":
            return {"Attributes": copy.deepcopy(new)}
        return {}


# --- driving flows by hand -----------------------------------------------------

Flow = Generator[Any, Any, Any]


def finish(flow: Flow, answer: Any) -> Any:
    """Send the last answer; return the flow's value (it must stop)."""
    try:
        request = flow.send(answer)
    except StopIteration as stop:
        return stop.value
    raise AssertionError(f"the flow did not stop; it asked for {request!r}")
