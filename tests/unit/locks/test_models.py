"""LockConfig validation, Holder parsing, the PynamoDB item model and the public API."""

from __future__ import annotations

import math
import types

import pytest
from pynamodb.attributes import TTLAttribute

import locks
from locks._common import create_table_params
from locks._models import (
    CLEANUP_AT,
    EXPIRES_AT,
    FREED_AT,
    GRANTED_AT,
    HANDOFF,
    HELD_MS,
    OWNER,
    PK,
    QUEUE_GONE,
    QUEUE_NEXT,
    QUEUE_SERVED,
    TOKEN,
    Holder,
    LockConfig,
    lease_model,
)
from locks._protocol import NAMES
from locks.exceptions import (
    AcquireTimeout,
    LeaseLost,
    LeaseUnavailable,
    LockBackendError,
    LockError,
    LockStateError,
    TableNotFound,
)

# --- LockConfig ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"lease_seconds": 0}, "lease_seconds must be a positive", id="lease-zero"),
        pytest.param(
            {"lease_seconds": math.nan}, "lease_seconds must be a positive", id="lease-nan"
        ),
        pytest.param(
            {"lease_seconds": math.inf}, "lease_seconds must be a positive", id="lease-inf"
        ),
        pytest.param({"retry_base_seconds": 0}, "retry_base_seconds must be", id="base-zero"),
        pytest.param({"retry_cap_seconds": -1}, "retry_cap_seconds must be", id="cap-negative"),
        pytest.param(
            {"cleanup_after_seconds": 0}, "cleanup_after_seconds must be a", id="cleanup-zero"
        ),
        pytest.param(
            {"max_clock_skew_seconds": -0.001}, "max_clock_skew_seconds", id="skew-negative"
        ),
        pytest.param({"max_clock_skew_seconds": math.inf}, "max_clock_skew_seconds", id="skew-inf"),
        pytest.param(
            {"retry_base_seconds": 0.5, "retry_cap_seconds": 0.4},
            "retry_base_seconds must not exceed",
            id="base-above-cap",
        ),
        pytest.param({"safety_margin_seconds": -1}, "safety_margin_seconds", id="margin-negative"),
        pytest.param(
            {"safety_margin_seconds": 10}, "safety_margin_seconds", id="margin-whole-lease"
        ),
        pytest.param({"safety_margin_seconds": math.nan}, "safety_margin_seconds", id="margin-nan"),
        pytest.param(
            {"heartbeat_seconds": 0}, "heartbeat_seconds must be a positive", id="hb-zero"
        ),
        pytest.param(
            {"heartbeat_seconds": 4.6}, "heartbeat_seconds must be at most half", id="hb-long"
        ),
        pytest.param({"claim_seconds": 0}, "claim_seconds must be a positive", id="claim-zero"),
        pytest.param({"local_handoffs": -1}, "local_handoffs must be >= 0", id="handoffs-negative"),
        pytest.param(
            {"cleanup_after_seconds": 12}, "cleanup_after_seconds must exceed", id="cleanup-short"
        ),
    ],
)
def test_config_rejects_invalid_timings(kwargs, message):
    """Each inconsistent timing raises ValueError naming the field."""
    base = {"lease_seconds": 10, "max_clock_skew_seconds": 1}

    with pytest.raises(ValueError, match=message):
        LockConfig(**{**base, **kwargs})


def test_config_defaults_are_valid():
    """The defaults pass their own validation."""
    assert 10_000 == LockConfig().lease_ms


def test_config_accepts_a_heartbeat_of_exactly_half_the_trusted_lease():
    """heartbeat = (lease - margin) / 2 is the longest allowed."""
    config = LockConfig(lease_seconds=10, safety_margin_seconds=1, heartbeat_seconds=4.5)

    assert 4.5 == config.heartbeat


def test_config_accepts_zero_skew_and_margin():
    """A single host (no skew) may use no margin."""
    config = LockConfig(lease_seconds=10, max_clock_skew_seconds=0, safety_margin_seconds=0)

    assert (0, 0) == (config.skew_ms, config.margin)


def test_config_cleanup_must_be_strictly_longer_than_lease_plus_twice_skew():
    """cleanup_after = lease + 2 x skew is rejected (tokens could go backwards)."""
    with pytest.raises(ValueError, match="cleanup_after_seconds must exceed"):
        LockConfig(lease_seconds=10, max_clock_skew_seconds=1, cleanup_after_seconds=12)


def test_config_default_heartbeat_is_a_third_of_the_lease():
    """Without heartbeat_seconds, the heartbeat is lease / 3."""
    assert pytest.approx(4.0) == LockConfig(lease_seconds=12).heartbeat


@pytest.mark.parametrize(("lease", "margin"), [(5, 0.5), (10, 1.0), (60, 1.0)])
def test_config_default_margin_is_a_tenth_of_the_lease_at_most_one_second(lease, margin):
    """Without safety_margin_seconds, the margin is min(1 s, lease / 10)."""
    assert margin == LockConfig(lease_seconds=lease).margin


def test_config_default_claim_is_twice_the_retry_cap():
    """Without claim_seconds, a free lease waits 2 x retry_cap per waiter ahead (no skew:
    passing is a matter of order, not of safety)."""
    config = LockConfig(max_clock_skew_seconds=0.5, retry_cap_seconds=0.25)

    assert 0.5 == config.claim


def test_config_claim_seconds_overrides_the_default():
    """An explicit claim_seconds is used as is."""
    assert 3.0 == LockConfig(claim_seconds=3.0).claim


def test_config_lease_ms_rounds_and_skew_ms_rounds_up():
    """Lease ms round to nearest; skew ms round up (the safe direction)."""
    config = LockConfig(lease_seconds=10.0004, max_clock_skew_seconds=0.0001)

    assert (10_000, 1) == (config.lease_ms, config.skew_ms)


def test_config_is_frozen():
    """A config cannot be changed after validation."""
    config = LockConfig()

    with pytest.raises(AttributeError):
        config.lease_seconds = 1  # type: ignore[misc]


# --- Holder.from_item ----------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, {}])
def test_holder_of_no_item_is_all_none(empty):
    """No item (or an empty one) means no holder, token or expiry."""
    assert Holder(owner=None, token=None, expires_at_ms=None) == Holder.from_item(empty)


def test_holder_parses_every_attribute():
    """Owner, token, expiry, the last grant's times and the line are read from DynamoDB JSON."""
    item = {
        PK: {"S": "k"},
        OWNER: {"S": "o"},
        TOKEN: {"N": "12"},
        EXPIRES_AT: {"N": "1000"},
        GRANTED_AT: {"N": "400"},
        HELD_MS: {"N": "250"},
        FREED_AT: {"N": "300"},
        QUEUE_NEXT: {"N": "6"},
        QUEUE_SERVED: {"N": "2"},
        QUEUE_GONE: {"NS": ["3", "5"]},
    }
    expected = Holder(
        owner="o",
        token=12,
        expires_at_ms=1000,
        granted_at_ms=400,
        held_ms=250,
        freed_at_ms=300,
        queue_next=6,
        queue_served=2,
        queue_gone=frozenset({3, 5}),
    )

    assert expected == Holder.from_item(item)


def test_holder_gone_numbers_are_a_frozenset_of_ints():
    """The given-up numbers compare with the counts (ints) and keep Holder hashable."""
    holder = Holder.from_item({PK: {"S": "k"}, QUEUE_GONE: {"NS": ["3", "5"]}})

    assert (frozenset, {int}) == (type(holder.queue_gone), {type(n) for n in holder.queue_gone})


def test_holder_leaves_missing_attributes_none_and_the_line_empty():
    """A partial item (just the key and an owner) parses with None for the rest, no line."""
    item = {PK: {"S": "k"}, OWNER: {"S": "o"}}

    assert Holder("o", None, None, None, None, None, 0, 0, frozenset()) == Holder.from_item(item)


@pytest.mark.parametrize(
    ("queue_next", "queue_served", "queue_gone", "expected"),
    [
        pytest.param(0, 0, (), 0, id="no-line"),
        pytest.param(5, 5, (), 0, id="all-served"),
        pytest.param(5, 2, (), 3, id="three-waiting"),
        pytest.param(5, 2, (3, 5), 1, id="two-gave-up"),
        pytest.param(5, 2, (1, 2), 3, id="gone-already-served"),
        pytest.param(5, 2, (3, 4, 5), 0, id="all-gave-up"),
    ],
)
def test_holder_waiting_counts_numbers_not_served_nor_given_up(
    queue_next, queue_served, queue_gone, expected
):
    """Waiting is next - served, less the given-up numbers in (served, next]: a gone
    number a grant has already passed counts for nothing."""
    holder = Holder(
        None,
        1,
        0,
        queue_next=queue_next,
        queue_served=queue_served,
        queue_gone=frozenset(queue_gone),
    )

    assert expected == holder.waiting


def test_holder_of_no_item_has_nobody_waiting():
    """No item, no line."""
    assert 0 == Holder.from_item(None).waiting


# --- the PynamoDB model -------------------------------------------------------------------


def test_model_attribute_names_are_the_protocols_names():
    """The PynamoDB model and the raw requests agree on every attribute name."""
    model = lease_model("leases")
    actual = sorted(attr.attr_name for attr in model.get_attributes().values())

    assert sorted(NAMES.values()) == actual


def test_model_names_the_new_attributes_by_the_protocols_constants():
    """The model's grant-time and line attributes store under the names the requests use."""
    expected = {
        "granted_at": GRANTED_AT,
        "freed_at": FREED_AT,
        "held_ms": HELD_MS,
        "queue_next": QUEUE_NEXT,
        "queue_served": QUEUE_SERVED,
        "queue_gone": QUEUE_GONE,
    }
    attributes = lease_model("leases").get_attributes()

    assert expected == {name: attributes[name].attr_name for name in expected}


def test_model_attribute_types_are_what_the_requests_write():
    """Numbers are N, the given-up numbers a number set (NS: ADD and DELETE need one)."""
    model = lease_model("leases")
    expected = {
        PK: "S",
        OWNER: "S",
        TOKEN: "N",
        EXPIRES_AT: "N",
        GRANTED_AT: "N",
        CLEANUP_AT: "N",
        FREED_AT: "N",
        HELD_MS: "N",
        QUEUE_NEXT: "N",
        QUEUE_SERVED: "N",
        QUEUE_GONE: "NS",
        HANDOFF: "S",
    }

    assert expected == {a.attr_name: a.attr_type for a in model.get_attributes().values()}


def test_model_hash_key_is_the_protocols_key():
    """The table's partition key is the attribute the requests address."""
    model = lease_model("leases")
    hash_keys = [a.attr_name for a in model.get_attributes().values() if a.is_hash_key]

    assert [PK] == hash_keys


def test_model_cleanup_attribute_is_the_ttl():
    """TTL deletes items by cleanup_at (epoch seconds)."""
    model = lease_model("leases")
    ttl = [a.attr_name for a in model.get_attributes().values() if isinstance(a, TTLAttribute)]

    assert ["cleanup_at"] == ttl


def test_model_meta_carries_table_region_host_and_billing():
    """lease_model builds one model per table, pay-per-request, with optional region/host."""
    meta = lease_model("leases", region="eu-west-1", host="http://127.0.0.1:1").Meta

    assert ("leases", "eu-west-1", "http://127.0.0.1:1", "PAY_PER_REQUEST") == (
        meta.table_name,
        meta.region,
        meta.host,
        meta.billing_mode,
    )


def test_create_table_params_match_the_pynamodb_model():
    """The table the drivers create has the key schema of lease_model."""
    schema = lease_model("leases")._get_schema()
    params = create_table_params("leases")

    assert (schema["key_schema"], schema["attribute_definitions"]) == (
        params["KeySchema"],
        params["AttributeDefinitions"],
    )


# --- public API ---------------------------------------------------------------------------


def test_all_is_sorted():
    """locks.__all__ is kept sorted."""
    assert sorted(locks.__all__) == locks.__all__


def test_all_lists_exactly_the_public_names():
    """Every public, non-module name of the package is in __all__, and nothing else."""
    public = {
        name
        for name, value in vars(locks).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert public == set(locks.__all__)


def test_every_error_derives_from_lock_error():
    """One exception root for the package."""
    errors = [
        AcquireTimeout,
        LeaseLost,
        LeaseUnavailable,
        LockBackendError,
        LockStateError,
        TableNotFound,
    ]

    assert [True] * len(errors) == [issubclass(e, LockError) for e in errors]


def test_acquire_timeout_is_a_lease_unavailable():
    """Catching LeaseUnavailable also catches a timeout."""
    assert issubclass(AcquireTimeout, LeaseUnavailable)


def test_lock_state_error_is_a_runtime_error():
    """Misuse is also a RuntimeError (httpx StreamError style)."""
    assert issubclass(LockStateError, RuntimeError)


def test_table_not_found_names_the_table_and_code():
    """A missing table is a backend error with DynamoDB's code and the table name."""
    error = TableNotFound("leases", None)

    assert ("leases", "ResourceNotFoundException") == (error.table_name, error.code)
