"""The multi-tag orchestration of ``service.domain.promote``, over a recording push."""

from __future__ import annotations

import dataclasses

import pytest

from service.domain.errors import LayersNotFound, LeaseTimeout, PushError, RepositoryNotFound
from service.domain.models import ImageRef, Outcome, PushRequest, PushResult
from service.domain.promote import (
    ANY_TAG,
    DigestRef,
    ExpectedDigestMismatch,
    LayersNotInTarget,
    Overall,
    check_expected,
    history_ref,
    push_tags,
    tag_refs,
)

MANIFEST = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


def request() -> PushRequest:
    return PushRequest.create(
        repository="team/app",
        tag=ANY_TAG,
        manifest=MANIFEST,
        default_wait_seconds=1.0,
        max_wait_seconds=5.0,
    )


class Pushes:
    """Records the tags pushed; fails the tags named in ``errors``."""

    def __init__(self, errors: dict[str, PushError] | None = None) -> None:
        self.tags: list[str] = []
        self.errors = errors or {}

    async def __call__(self, push: PushRequest) -> PushResult:
        self.tags.append(push.ref.tag)
        if push.ref.tag in self.errors:
            raise self.errors[push.ref.tag]
        return PushResult(
            outcome=Outcome.PUSHED,
            ref=push.ref,
            digest=push.digest,
            previous_digest=None,
            sequence=None,
            token=1,
            waited_ms=0.0,
            current_digest=push.digest,
            current_sequence=None,
        )


def busy(tag: str) -> LeaseTimeout:
    return LeaseTimeout(f"team/app:{tag}", holder="x", expires_at=None, retry_after=1.0)


async def test_tags_are_pushed_once_each_in_sorted_order() -> None:
    """Duplicates collapse and tags go one at a time in sorted order."""
    pushes = Pushes()
    await push_tags(request(), tag_refs("team/app", ["v1", "latest", "v1", "main"]), pushes)
    assert ["latest", "main", "v1"] == pushes.tags


async def test_every_tag_succeeding_is_ok() -> None:
    """No tag failed: status ok."""
    result = await push_tags(request(), tag_refs("team/app", ["a", "b"]), Pushes())
    assert Overall.OK == result.status


async def test_a_tag_error_is_that_tags_answer_and_the_rest_go_on() -> None:
    """A lease timeout on one tag: that tag failed, the next pushed, status partial."""
    pushes = Pushes({"a": busy("a")})
    result = await push_tags(request(), tag_refs("team/app", ["a", "b"]), pushes)
    outcomes = [(t.tag, t.error.code if t.error else "ok") for t in result.tags]
    assert (Overall.PARTIAL, [("a", "lease_timeout"), ("b", "ok")]) == (result.status, outcomes)


async def test_every_tag_failing_is_failed() -> None:
    """Each tag failed on its own: status failed."""
    pushes = Pushes({"a": busy("a"), "b": busy("b")})
    result = await push_tags(request(), tag_refs("team/app", ["a", "b"]), pushes)
    assert Overall.FAILED == result.status


async def test_image_error_at_first_tag_is_the_requests_error() -> None:
    """The repository missing at the first tag is raised, and no other tag is tried."""
    pushes = Pushes({"a": RepositoryNotFound("team/app")})
    with pytest.raises(RepositoryNotFound):
        await push_tags(request(), tag_refs("team/app", ["a", "b"]), pushes)
    assert ["a"] == pushes.tags


async def test_image_error_after_a_success_answers_each_tag_left() -> None:
    """An image error after a pushed tag: the tags left share it, untried."""
    pushes = Pushes({"b": LayersNotFound(["sha256:" + "0" * 64])})
    result = await push_tags(request(), tag_refs("team/app", ["a", "b", "c"]), pushes)
    codes = [t.error.code if t.error else "ok" for t in result.tags]
    assert (["a", "b"], ["ok", "layers_not_found", "layers_not_found"]) == (pushes.tags, codes)


async def test_missing_layers_across_repositories_name_the_target() -> None:
    """Promoted from another repository, missing layers say the target lacks them."""
    pushes = Pushes({"a": LayersNotFound([])})
    with pytest.raises(LayersNotInTarget) as raised:
        await push_tags(request(), tag_refs("team/app", ["a"]), pushes, source_repository="ci/b")
    assert raised.value.message.startswith("Repository team/app lacks layers of the image")


def test_expected_digest_other_than_the_bytes_is_refused() -> None:
    """expected_digest differing from the bytes' digest raises digest_mismatch."""
    with pytest.raises(ExpectedDigestMismatch) as raised:
        check_expected(request(), "sha256:" + "1" * 64)
    assert "digest_mismatch" == raised.value.code


def test_no_tags_is_invalid() -> None:
    """An empty tag list is refused."""
    with pytest.raises(PushError) as raised:
        tag_refs("team/app", [])
    assert "invalid_request" == raised.value.code


def test_history_ref_of_a_digest_key() -> None:
    """@sha256:<hex> is the history key of pushes by digest; other tags are tags."""
    digest = "sha256:" + "2" * 64
    assert (DigestRef, ImageRef) == (
        type(history_ref("team/app", "@" + digest)),
        type(history_ref("team/app", "v1")),
    )


async def test_wait_seconds_bounds_all_the_tags_together() -> None:
    """A request's ``wait_seconds`` is shared by its tags: each waits what is left, and a
    tag after the deadline makes one attempt (0 s), so N busy tags cannot hold a request
    N times its wait."""
    now = [0.0]
    waits: list[float] = []
    pushes = Pushes()

    async def slow(push: PushRequest) -> PushResult:
        waits.append(push.wait_seconds)
        now[0] += 2.0  # each tag waited 2 s for its lease
        return await pushes(push)

    five = dataclasses.replace(request(), wait_seconds=5.0)
    await push_tags(five, tag_refs("team/app", ["a", "b", "c", "d"]), slow, clock=lambda: now[0])

    assert [5.0, 3.0, 1.0, 0.0] == waits
