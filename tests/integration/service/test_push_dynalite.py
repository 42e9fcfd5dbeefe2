"""The push tests of ``test_push_http`` and the round-trip counts, with DynamoDB on
dynalite (which has no ``TransactWriteItems``: the service makes single-item writes
only) and ECR on moto."""

from __future__ import annotations

import pytest

from tests.integration.service.test_push_http import (
    test_bad_cursor_is_invalid_request,
    test_concurrent_unsequenced_pushes_to_an_immutable_tag,
    test_drifted_tag_is_repaired_logged_and_counted,
    test_history_is_newest_first_and_paginated,
    test_image_already_exists_is_unchanged,
    test_immutable_tag_other_digest_is_409,
    test_immutable_tag_same_digest_is_unchanged,
    test_manifest_without_media_type_uses_parameter,
    test_out_of_order_sequences_never_move_tag_backwards,
    test_push_moves_tag_to_sha256_of_manifest,
    test_repush_is_unchanged_and_spends_no_put,
    test_tag_record_names_digest_sequence_token_and_caller,
)
from tests.integration.service.test_round_trips import (
    test_history_and_release_follow_the_answer,
    test_round_trips_per_outcome,
)

pytestmark = pytest.mark.integration

__all__ = [  # collected again here, on dynalite
    "test_bad_cursor_is_invalid_request",
    "test_concurrent_unsequenced_pushes_to_an_immutable_tag",
    "test_drifted_tag_is_repaired_logged_and_counted",
    "test_history_and_release_follow_the_answer",
    "test_history_is_newest_first_and_paginated",
    "test_image_already_exists_is_unchanged",
    "test_immutable_tag_other_digest_is_409",
    "test_immutable_tag_same_digest_is_unchanged",
    "test_manifest_without_media_type_uses_parameter",
    "test_out_of_order_sequences_never_move_tag_backwards",
    "test_push_moves_tag_to_sha256_of_manifest",
    "test_repush_is_unchanged_and_spends_no_put",
    "test_round_trips_per_outcome",
    "test_tag_record_names_digest_sequence_token_and_caller",
]


@pytest.fixture(scope="module")
def service_dynamodb(dynalite_endpoint: str) -> str:
    """DynamoDB on dynalite for this module."""
    return dynalite_endpoint
