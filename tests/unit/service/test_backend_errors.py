"""DynamoDB failures as push errors: worth retrying, or refused for good (the
deployment's fault or the call's data), and never with DynamoDB's own text."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
)

from service.adapters.aws import backend_error
from service.domain.errors import BackendRejected, BackendUnavailable

SECRET = "arn:aws:iam::123456789012:role/pushgate is not authorized"


def client_error(code: str, status: int = 400, **extra: object) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": SECRET},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "PutItem")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "UnknownOperationException",
        "ExpiredTokenException",
    ],
)
def test_deployment_fault_is_rejected_for_good(code: str) -> None:
    """Permissions, credentials, a missing table or an operation the backend lacks:
    ``backend_rejected``, not retryable, the deployment's fault."""
    error = backend_error(client_error(code), "PutItem on the tags table")
    assert isinstance(error, BackendRejected)
    assert ("backend_rejected", False, True, None, code) == (
        error.code,
        error.retryable,
        error.deployment,
        error.retry_after,
        error.cause_code,
    )


def test_validation_exception_is_a_data_fault() -> None:
    """A ValidationException is refused for good but is the call's data, not the
    deployment: it does not make the service unready."""
    error = backend_error(client_error("ValidationException"), "PutItem")
    assert isinstance(error, BackendRejected)
    assert (False, False) == (error.retryable, error.deployment)


def test_transaction_cancelled_by_invalid_data_is_rejected() -> None:
    """A transaction cancelled because an item is invalid will fail again."""
    reasons = [{"Code": "None"}, {"Code": "ValidationError"}]
    error = backend_error(
        client_error("TransactionCanceledException", CancellationReasons=reasons), "write"
    )
    assert isinstance(error, BackendRejected)


def test_transaction_cancelled_by_a_conflict_is_retryable() -> None:
    """A transaction cancelled by a conflict may succeed next time."""
    reasons = [{"Code": "None"}, {"Code": "TransactionConflict"}]
    error = backend_error(
        client_error("TransactionCanceledException", CancellationReasons=reasons), "write"
    )
    assert (BackendUnavailable, True) == (type(error), error.retryable)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("TransactionConflictException", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_transient_failure_is_retryable(code: str, status: int) -> None:
    """Throttling, conflicts and 5xx stay 503 backend_unavailable with Retry-After."""
    error = backend_error(client_error(code, status), "GetItem")
    assert (BackendUnavailable, True, 1.0) == (type(error), error.retryable, error.retry_after)


def test_unknown_client_error_is_not_retried() -> None:
    """An unknown 4xx will fail the same way again: rejected, but not blamed on the
    deployment (it does not change readiness)."""
    error = backend_error(client_error("SomethingNewException"), "GetItem")
    assert isinstance(error, BackendRejected)
    assert not error.deployment


def test_no_answer_is_retryable() -> None:
    """A connection failure is worth retrying."""
    error = backend_error(EndpointConnectionError(endpoint_url="http://10.0.0.1"), "GetItem")
    assert (BackendUnavailable, True) == (type(error), error.retryable)
    assert "10.0.0.1" not in error.message


def test_missing_credentials_are_the_deployments_fault() -> None:
    """No credentials: rejected for good, a deployment fault."""
    error = backend_error(NoCredentialsError(), "GetItem")
    assert isinstance(error, BackendRejected)
    assert error.deployment


def test_request_botocore_refuses_to_send_is_a_data_fault() -> None:
    """A request that fails botocore's own checks will fail again."""
    error = backend_error(ParamValidationError(report="bad"), "GetItem")
    assert isinstance(error, BackendRejected)
    assert not error.deployment


@pytest.mark.parametrize("code", ["AccessDeniedException", "InternalServerError"])
def test_answer_carries_no_dynamodb_text(code: str) -> None:
    """The message names the call and the code, never DynamoDB's text (account ids,
    ARNs, item values)."""
    error = backend_error(client_error(code, 500), "GetItem on the tags table")
    assert (False, True, code) == (
        SECRET in error.message,
        "GetItem on the tags table" in error.message,
        error.cause_code,
    )
