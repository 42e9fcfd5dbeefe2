"""The ECR error table: every code of shared/ECR.md maps to one pushgate answer."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from service.adapters.ecr import ERROR_TABLE, _unreachable, translate
from service.domain import errors
from service.domain.ports import PutStatus


def client_error(code: str, message: str = "m", status: int = 400, **extra: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "PutImage")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ImageAlreadyExistsException", PutStatus.ALREADY_EXISTS),
        ("ImageTagAlreadyExistsException", PutStatus.ALREADY_EXISTS),
        ("LayersNotFoundException", errors.LayersNotFound),
        ("ReferencedImagesNotFoundException", errors.ReferencedImagesNotFound),
        ("ImageDigestDoesNotMatchException", errors.DigestMismatch),
        ("RepositoryNotFoundException", errors.RepositoryNotFound),
        ("InvalidParameterException", errors.InvalidRequest),
        ("LimitExceededException", errors.QuotaExceeded),
        ("ThrottlingException", errors.RegistryThrottled),
        ("ServerException", errors.RegistryFault),
        ("KmsException", errors.KmsFailure),
    ],
)
def test_code_maps_to_answer(code: str, expected: object) -> None:
    """Each ECR code of the table translates to its status or error class."""
    answer = translate(client_error(code), repository="r/x", digest="sha256:" + "0" * 64)
    if isinstance(expected, PutStatus):
        assert expected is answer
    else:
        assert isinstance(answer, expected)  # type: ignore[arg-type]


def test_every_table_row_is_covered() -> None:
    """The table has exactly the codes of shared/ECR.md (plus one throttling alias)."""
    assert {
        "ImageAlreadyExistsException",
        "ImageTagAlreadyExistsException",
        "LayersNotFoundException",
        "ReferencedImagesNotFoundException",
        "ImageDigestDoesNotMatchException",
        "RepositoryNotFoundException",
        "InvalidParameterException",
        "LimitExceededException",
        "ThrottlingException",
        "TooManyRequestsException",
        "ServerException",
        "KmsException",
    } == set(ERROR_TABLE)


def test_quota_is_not_retryable_but_throttling_is() -> None:
    """LimitExceeded must not be retried; throttling and 5xx must."""
    quota = translate(client_error("LimitExceededException"), repository="r", digest=None)
    throttled = translate(client_error("ThrottlingException"), repository="r", digest=None)
    fault = translate(client_error("ServerException", status=500), repository="r", digest=None)
    assert isinstance(quota, errors.PushError)
    assert isinstance(throttled, errors.PushError)
    assert isinstance(fault, errors.PushError)
    assert (False, True, True) == (quota.retryable, throttled.retryable, fault.retryable)


def test_unknown_5xx_is_a_retryable_fault() -> None:
    """An unlisted code with a 5xx status is a retryable registry fault."""
    answer = translate(client_error("InternalFailure", status=503), repository="r", digest=None)
    assert isinstance(answer, errors.RegistryFault)


def test_unknown_4xx_is_a_registry_error() -> None:
    """An unlisted 4xx code is a non-retryable registry_refused naming the code."""
    answer = translate(client_error("AccessDeniedException"), repository="r", digest=None)
    assert isinstance(answer, errors.RegistryError)
    assert (errors.RegistryError, "registry_refused", False, "AccessDeniedException") == (
        type(answer),
        answer.code,
        answer.retryable,
        answer.cause_code,
    )


def test_refusal_answer_carries_no_ecr_text() -> None:
    """ECR's text of a refusal (it can name the account and role) stays out of the
    answer; the code is kept."""
    secret = "User: arn:aws:sts::123456789012:assumed-role/pushgate is not authorized"
    answer = translate(client_error("AccessDeniedException", secret), repository="r", digest=None)
    assert isinstance(answer, errors.RegistryError)
    assert (False, True) == (secret in answer.message, "AccessDeniedException" in answer.message)


def test_unreachable_registry_answer_leaves_out_the_endpoint() -> None:
    """No answer from ECR is a retryable fault whose message does not name the endpoint."""
    fault = _unreachable(EndpointConnectionError(endpoint_url="http://10.1.2.3:4566"))
    assert (True, False) == (fault.retryable, "10.1.2.3" in fault.message)


def test_layers_not_found_lists_digests() -> None:
    """The missing layer digests are extracted from ECR's message."""
    digest = "sha256:" + "a" * 64
    answer = translate(
        client_error("LayersNotFoundException", f"Layers with digests '[{digest}]' missing"),
        repository="r",
        digest=None,
    )
    assert isinstance(answer, errors.LayersNotFound)
    assert [digest] == answer.digests


def test_kms_error_carries_kms_text() -> None:
    """KmsException keeps the KMS error code and message."""
    answer = translate(
        client_error("KmsException", "key disabled", kmsError="KMSDisabledException"),
        repository="r",
        digest=None,
    )
    assert isinstance(answer, errors.KmsFailure)
    assert {"kms_error": "KMSDisabledException", "kms_message": "key disabled"} == answer.details()


def test_invalid_parameter_names_the_field() -> None:
    """ECR's parameter name is mapped to the API's field name."""
    answer = translate(
        client_error(
            "InvalidParameterException", "Invalid parameter at 'imageTag' failed to satisfy"
        ),
        repository="r",
        digest=None,
    )
    assert isinstance(answer, errors.InvalidRequest)
    assert "tag" == answer.field
