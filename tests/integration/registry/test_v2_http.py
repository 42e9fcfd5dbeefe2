"""The /v2/ protocol over HTTP, request by request: chunked uploads (across replicas),
out-of-order chunks, digests, manifests by digest and the outcome header."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from tests.integration.registry.conftest import TOKEN, Front
from tests.oci_layouts import CONFIG, LAYER, MANIFEST

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
AUTH = {"authorization": f"Bearer {TOKEN}"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start(url: str, repository: str) -> httpx.Response:
    return httpx.post(f"{url}/v2/{repository}/blobs/uploads/", headers=AUTH, timeout=30)


def test_chunked_upload_continues_on_a_second_replica(front: Front) -> None:
    """POST on one replica, a 5 MiB chunk there, the rest on the other replica, the PUT
    back on the first: the blob is complete in ECR (replicas keep no upload state)."""
    repository = front.repository()
    data = os.urandom(7 * MIB + 3)
    opened = start(front.url, repository)
    assert 202 == opened.status_code
    first = httpx.patch(
        front.url + opened.headers["location"],
        content=data[: 5 * MIB],
        headers=AUTH | {"content-range": f"0-{5 * MIB - 1}"},
        timeout=60,
    )
    assert (202, f"0-{5 * MIB - 1}") == (first.status_code, first.headers["range"])
    second = httpx.patch(
        front.second_url + first.headers["location"],
        content=data[5 * MIB :],
        headers=AUTH | {"content-range": f"{5 * MIB}-{len(data) - 1}"},
        timeout=60,
    )
    assert 202 == second.status_code
    status = httpx.get(front.second_url + second.headers["location"], headers=AUTH, timeout=30)
    assert (204, f"0-{len(data) - 1}") == (status.status_code, status.headers["range"])
    closed = httpx.put(
        front.url + second.headers["location"],
        params={"digest": digest_of(data)},
        headers=AUTH,
        timeout=60,
    )
    assert (201, digest_of(data)) == (closed.status_code, closed.headers["docker-content-digest"])
    head = httpx.head(f"{front.url}/v2/{repository}/blobs/{digest_of(data)}", headers=AUTH)
    assert (200, str(len(data))) == (head.status_code, head.headers["content-length"])


def test_chunk_out_of_order_is_416(front: Front) -> None:
    """A chunk that does not start where the upload stands: 416 with the upload's Range."""
    repository = front.repository()
    opened = start(front.url, repository)
    answer = httpx.patch(
        front.url + opened.headers["location"],
        content=b"x" * 10,
        headers=AUTH | {"content-range": "100-109"},
    )
    assert (416, "0-0") == (answer.status_code, answer.headers["range"])
    assert "RANGE_INVALID" == answer.json()["errors"][0]["code"]


def test_wrong_digest_is_digest_invalid_and_stores_nothing(front: Front) -> None:
    """Closing an upload with a digest its bytes do not have: 400 DIGEST_INVALID, and no
    blob under either digest."""
    repository = front.repository()
    data = os.urandom(1000)
    wrong = digest_of(b"something else")
    answer = httpx.post(
        f"{front.url}/v2/{repository}/blobs/uploads/",
        params={"digest": wrong},
        content=data,
        headers=AUTH,
    )
    assert (400, "DIGEST_INVALID") == (answer.status_code, answer.json()["errors"][0]["code"])
    for digest in (wrong, digest_of(data)):
        head = httpx.head(f"{front.url}/v2/{repository}/blobs/{digest}", headers=AUTH)
        assert 404 == head.status_code


def test_small_chunk_before_the_last_is_refused_with_the_rule(front: Front) -> None:
    """A chunk under 5 MiB followed by another: ECR refuses the layer at completion; the
    answer names the rule (OCI-Chunk-Min-Length)."""
    repository = front.repository()
    opened = start(front.url, repository)
    assert str(5 * MIB) == opened.headers["oci-chunk-min-length"]
    first = httpx.patch(front.url + opened.headers["location"], content=b"a" * 100, headers=AUTH)
    data = b"a" * 100 + b"b" * 100
    closed = httpx.put(
        front.url + first.headers["location"],
        params={"digest": digest_of(data)},
        content=b"b" * 100,
        headers=AUTH,
    )
    assert (400, "BLOB_UPLOAD_INVALID") == (
        closed.status_code,
        closed.json()["errors"][0]["code"],
    )
    assert "5 MiB" in closed.json()["errors"][0]["message"]


def push_blob(front: Front, repository: str, data: bytes) -> str:
    answer = httpx.post(
        f"{front.url}/v2/{repository}/blobs/uploads/",
        params={"digest": digest_of(data)},
        content=data,
        headers=AUTH,
        timeout=30,
    )
    assert 201 == answer.status_code, answer.text
    return digest_of(data)


def manifest_for(front: Front, repository: str, build: int, sequence: int | None = None) -> bytes:
    layer = os.urandom(64)
    config = json.dumps({"build": build}).encode()
    document: dict = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": CONFIG,
            "digest": push_blob(front, repository, config),
            "size": len(config),
        },
        "layers": [{"mediaType": LAYER, "digest": push_blob(front, repository, layer), "size": 64}],
    }
    if sequence is not None:
        document["annotations"] = {"dev.pushgate.sequence": str(sequence)}
    return json.dumps(document).encode()


def put_manifest(
    front: Front, repository: str, reference: str, body: bytes, **headers: str
) -> httpx.Response:
    return httpx.put(
        f"{front.url}/v2/{repository}/manifests/{reference}",
        content=body,
        headers=AUTH | {"content-type": MANIFEST} | headers,
        timeout=30,
    )


def test_manifest_by_digest_is_stored_untagged(front: Front) -> None:
    """PUT by digest: 201 with the digest; ECR holds the image, and no tag names it."""
    repository = front.repository()
    body = manifest_for(front, repository, 1)
    answer = put_manifest(front, repository, digest_of(body), body)
    assert (201, digest_of(body)) == (answer.status_code, answer.headers["docker-content-digest"])
    images = front.ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert [(digest_of(body), [])] == [(i["imageDigest"], i.get("imageTags", [])) for i in images]


def test_manifest_by_digest_that_does_not_hash_to_it_is_digest_invalid(front: Front) -> None:
    """PUT by a digest the bytes do not have: 400 DIGEST_INVALID, nothing stored."""
    repository = front.repository()
    body = manifest_for(front, repository, 1)
    answer = put_manifest(front, repository, digest_of(b"other"), body)
    assert (400, "DIGEST_INVALID") == (answer.status_code, answer.json()["errors"][0]["code"])


def test_older_build_is_superseded_yet_stored_and_the_tag_stays(front: Front) -> None:
    """A manifest with a lower sequence than the tag's: 201 (the tool does not fail),
    ``Pushgate-Outcome: superseded``, the tag stays on the newer build, and the older image
    is in ECR by digest."""
    repository = front.repository()
    newer = manifest_for(front, repository, 2, sequence=2)
    older = manifest_for(front, repository, 1, sequence=1)
    assert "pushed" == put_manifest(front, repository, "main", newer).headers["pushgate-outcome"]
    answer = put_manifest(front, repository, "main", older)
    assert (201, "superseded") == (answer.status_code, answer.headers["pushgate-outcome"])
    got = httpx.get(f"{front.url}/v2/{repository}/manifests/main", headers=AUTH)
    assert (newer, digest_of(newer)) == (got.content, got.headers["docker-content-digest"])
    stored = front.ecr.batch_get_image(
        repositoryName=repository, imageIds=[{"imageDigest": digest_of(older)}]
    )
    assert 1 == len(stored["images"])


def test_sequence_header_wins_over_the_annotation(front: Front) -> None:
    """``Pushgate-Sequence`` orders a build whose manifest carries no annotation."""
    repository = front.repository()
    assert (
        "pushed"
        == put_manifest(
            front,
            repository,
            "v1",
            manifest_for(front, repository, 5),
            **{"pushgate-sequence": "5"},
        ).headers["pushgate-outcome"]
    )
    late = put_manifest(
        front, repository, "v1", manifest_for(front, repository, 4), **{"pushgate-sequence": "4"}
    )
    assert "superseded" == late.headers["pushgate-outcome"]


@pytest.mark.parametrize("value", ["-1", "1e3", "9" * 40, "x"])
def test_bad_sequence_is_manifest_invalid(front: Front, value: str) -> None:
    """A sequence that is no whole number in range: 400 MANIFEST_INVALID, before any lease."""
    repository = front.repository()
    answer = put_manifest(
        front, repository, "v1", manifest_for(front, repository, 1), **{"pushgate-sequence": value}
    )
    assert (400, "MANIFEST_INVALID") == (answer.status_code, answer.json()["errors"][0]["code"])


def test_head_and_get_of_an_unknown_manifest_are_404(front: Front) -> None:
    """MANIFEST_UNKNOWN for a tag that does not exist; HEAD answers without a body."""
    repository = front.repository()
    got = httpx.get(f"{front.url}/v2/{repository}/manifests/nope", headers=AUTH)
    assert (404, "MANIFEST_UNKNOWN") == (got.status_code, got.json()["errors"][0]["code"])
    assert (
        404 == httpx.head(f"{front.url}/v2/{repository}/manifests/nope", headers=AUTH).status_code
    )


@pytest.mark.parametrize(
    "path",
    ["/v2/UPPER/blobs/uploads/", "/v2/a/blobs/uploads/", "/v2/team/x/blobs/uploads/not_an_offset"],
)
def test_bad_names_and_sessions_are_refused_in_the_spec_shape(front: Front, path: str) -> None:
    """Invalid names and unknown upload sessions: 4xx with the spec's error body."""
    method = "POST" if path.endswith("/") else "PATCH"
    answer = httpx.request(method, front.url + path, headers=AUTH, content=b"x")
    assert 400 <= answer.status_code < 500
    assert {"code", "message"} <= set(answer.json()["errors"][0])


def test_version_check_challenges_without_credentials(front: Front) -> None:
    """GET /v2/ with tokens on and no credentials: 401 with a Basic challenge; with the
    token as a Basic password: 200."""
    bare = httpx.get(f"{front.url}/v2/")
    assert (401, 'Basic realm="pushgate"') == (bare.status_code, bare.headers["www-authenticate"])
    basic = httpx.get(f"{front.url}/v2/", auth=("ci", TOKEN))
    assert 200 == basic.status_code


@pytest.mark.parametrize(
    "header", [b"Basic \xe9\xe9\xe9\xe9", b"Basic !!!!", b"Basic " + b"Y2k=", b"Bearer"]
)
def test_malformed_credentials_are_401_in_the_spec_shape(front: Front, header: bytes) -> None:
    """Credentials that do not decode (non-ASCII, not base64, no password): 401
    UNAUTHORIZED with the Basic challenge, never a 500."""
    answer = httpx.get(f"{front.url}/v2/", headers=[(b"authorization", header)])
    assert (401, "UNAUTHORIZED") == (answer.status_code, answer.json()["errors"][0]["code"])


@pytest.mark.parametrize("offset", ["%C2%B2", "%D9%A1%D9%A2", "1e3", "-1"])
def test_upload_offsets_are_ascii_digits(front: Front, offset: str) -> None:
    """An upload session whose offset is not ASCII digits ('²', Arabic-Indic digits) is no
    upload: 404 BLOB_UPLOAD_UNKNOWN, never a 500 nor a misread offset."""
    repository = front.repository()
    session = start(front.url, repository).headers["docker-upload-uuid"]
    answer = httpx.get(
        f"{front.url}/v2/{repository}/blobs/uploads/{session}_{offset}", headers=AUTH
    )
    assert (404, "BLOB_UPLOAD_UNKNOWN") == (answer.status_code, answer.json()["errors"][0]["code"])


def test_unicode_digit_sequence_is_manifest_invalid(front: Front) -> None:
    """A sequence of non-ASCII digits in the header: 400 MANIFEST_INVALID, not a 500."""
    repository = front.repository()
    answer = httpx.put(
        f"{front.url}/v2/{repository}/manifests/v1",
        content=manifest_for(front, repository, 1),
        headers=[
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", MANIFEST.encode()),
            (b"pushgate-sequence", "²".encode("latin-1")),
        ],
    )
    assert (400, "MANIFEST_INVALID") == (answer.status_code, answer.json()["errors"][0]["code"])


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v2/team/x/tags/list"), ("DELETE", "/v2/team/x/manifests/v1")]
)
def test_what_the_front_door_does_not_serve_is_answered_in_the_spec_shape(
    front: Front, method: str, path: str
) -> None:
    """Routes and methods the front door lacks: 404/405 with the spec's error body."""
    answer = httpx.request(method, front.url + path, headers=AUTH)
    assert answer.status_code in {404, 405}
    assert "UNSUPPORTED" == answer.json()["errors"][0]["code"]


def test_manifest_by_digest_is_recorded_in_history(front: Front) -> None:
    """A manifest PUT by digest is in history under ``@sha256:...``, as a push by digest
    through /v1 is; its answer names the outcome."""
    repository = front.repository()
    body = manifest_for(front, repository, 3)
    answer = put_manifest(front, repository, digest_of(body), body)
    assert "pushed" == answer.headers["pushgate-outcome"]
    history = httpx.get(
        f"{front.url}/v1/tags/history",
        params={"repository": repository, "tag": "@" + digest_of(body)},
        headers=AUTH,
    ).json()
    assert [("pushed", digest_of(body))] == [(i["outcome"], i["digest"]) for i in history["items"]]
