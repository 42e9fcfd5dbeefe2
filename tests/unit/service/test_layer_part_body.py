"""The JSON body of UploadLayerPart that pushgate writes itself (``service.adapters.layers``)."""

from __future__ import annotations

import json
import os
from typing import Any

import botocore.session
from botocore.serialize import create_serializer

from service.adapters.layers import _hold_part, _part_body

PARAMS = {
    "registryId": "123456789012",
    "repositoryName": "team/app",
    "uploadId": "0a1b-2c3d",
    "partFirstByte": 5242880,
    "partLastByte": 5245879,
}


def _botocore_body(params: dict[str, Any]) -> bytes:
    model = botocore.session.get_session().get_service_model("ecr")
    operation = model.operation_model("UploadLayerPart")
    body: bytes = create_serializer("json").serialize_to_request(params, operation)["body"]
    return body


def _through_hooks(params: dict[str, Any]) -> bytes:
    """The body sent for ``params``: both hooks around botocore's serializer, as a call."""
    context: dict[str, Any] = {}
    params = dict(params)
    _hold_part(params=params, context=context)
    request = {"body": _botocore_body(params)}
    _part_body(params=request, context=context)
    return request["body"]


def test_part_body_is_what_botocore_would_send() -> None:
    """The body holds the same JSON botocore's serializer makes of the part."""
    params = {**PARAMS, "layerPartBlob": os.urandom(3000)}
    assert json.loads(_botocore_body(params)) == json.loads(_through_hooks(params))


def test_the_part_leaves_the_call_context() -> None:
    """Once the body is written, the call's context no longer holds the part."""
    context: dict[str, Any] = {}
    params = {**PARAMS, "layerPartBlob": os.urandom(100)}
    _hold_part(params=params, context=context)
    _part_body(params={"body": _botocore_body(params)}, context=context)
    assert {} == context


def test_an_empty_part_keeps_botocore_body() -> None:
    """An empty blob (nothing to write) leaves the body as botocore made it."""
    params = {**PARAMS, "layerPartBlob": b""}
    assert _botocore_body(params) == _through_hooks(params)
