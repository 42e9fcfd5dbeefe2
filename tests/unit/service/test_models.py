"""Request validation: every field is checked before a lease is taken."""

from __future__ import annotations

import hashlib
import json

import pytest

from service.domain.errors import InvalidRequest
from service.domain.limits import MAX_MANIFEST_BYTES
from service.domain.models import ImageRef, PushRequest, manifest_digest
from tests.unit.service.fakes import OCI_MANIFEST, manifest


def create(**overrides: object) -> PushRequest:
    fields: dict[str, object] = {
        "repository": "team/app",
        "tag": "v1",
        "manifest": manifest(1),
        "default_wait_seconds": 5.0,
        "max_wait_seconds": 60.0,
    }
    fields.update(overrides)
    return PushRequest.create(**fields)  # type: ignore[arg-type]


def test_digest_is_sha256_of_exact_utf8_bytes() -> None:
    """The digest hashes the manifest text as given, non-ASCII included."""
    text = json.dumps({"mediaType": OCI_MANIFEST, "note": "café"}, ensure_ascii=False)
    expected = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert expected == create(manifest=text).digest
    assert expected == manifest_digest(text)


def test_reserialized_manifest_has_another_digest() -> None:
    """Whitespace matters: the bytes, not the JSON value, are hashed."""
    assert create(manifest=manifest(1)).digest != create(manifest=manifest(1) + " ").digest


def test_key_joins_repository_and_tag() -> None:
    """The lease and record key is repo:tag."""
    assert "a/b:c" == ImageRef("a/b", "c").key


def test_media_type_comes_from_the_manifest() -> None:
    """Without media_type, the manifest's mediaType is used."""
    assert OCI_MANIFEST == create().media_type


def test_wait_seconds_defaults() -> None:
    """Without wait_seconds, the server default applies."""
    assert 5.0 == create().wait_seconds


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"repository": "a"}, "repository"),
        ({"repository": "x" * 257}, "repository"),
        ({"repository": "Team/App"}, "repository"),
        ({"repository": "team//app"}, "repository"),
        ({"repository": "team/app/"}, "repository"),
        ({"tag": ""}, "tag"),
        ({"tag": "-leading-dash"}, "tag"),
        ({"tag": "a" * 129}, "tag"),
        ({"tag": "with space"}, "tag"),
        ({"tag": "semi:colon"}, "tag"),
        ({"manifest": ""}, "manifest"),
        ({"manifest": "not json"}, "manifest"),
        ({"manifest": "[1, 2]"}, "manifest"),
        ({"manifest": '{"mediaType": 5}'}, "manifest"),
        ({"manifest": "\ud800"}, "manifest"),
        ({"manifest": '{"schemaVersion": 2}'}, "media_type"),
        ({"manifest": '{"schemaVersion": 2}', "media_type": "text/plain"}, "media_type"),
        ({"media_type": "application/vnd.oci.image.index.v1+json"}, "media_type"),
        ({"manifest": '{"mediaType": "application/json"}'}, "media_type"),
        ({"sequence": -1}, "sequence"),
        ({"wait_seconds": 61.0}, "wait_seconds"),
        ({"wait_seconds": -1.0}, "wait_seconds"),
    ],
)
def test_bad_field_is_named(overrides: dict[str, object], field: str) -> None:
    """Each invalid field is reported by name."""
    with pytest.raises(InvalidRequest) as caught:
        create(**overrides)
    assert field == caught.value.field


def test_oversize_manifest_is_refused() -> None:
    """A manifest over 4 MiB is refused before it is even parsed."""
    big = json.dumps({"mediaType": OCI_MANIFEST, "pad": "x" * MAX_MANIFEST_BYTES})
    with pytest.raises(InvalidRequest) as caught:
        create(manifest=big)
    assert "manifest" == caught.value.field


def test_manifest_without_media_type_accepts_the_parameter() -> None:
    """A manifest with no mediaType is fine when media_type is given."""
    req = create(manifest='{"schemaVersion": 2}', media_type=OCI_MANIFEST)
    assert OCI_MANIFEST == req.media_type
