"""The stress harness without servers: the plan, the fault hooks' canned answers and
the result summary."""

from __future__ import annotations

import itertools

import pytest
from botocore.exceptions import ClientError

from service.stress.harness import (
    Counters,
    Faults,
    boto_client,
    make_plan,
    manifest_digest,
    sequence_of,
    spec_for,
)
from service.stress.invariants import check
from service.stress.modes import RunConfig, RunResult
from service.stress.record import Attempt, History
from service.stress.report import summary, table

UNREACHABLE = "http://127.0.0.1:9"  # the hooks answer before anything is sent


def test_plan_is_reproducible_with_a_seed():
    """The same seed gives the same plan; another seed scrambles it differently."""
    one = make_plan(repository="r", tags=3, pushes=60, seed=7)
    assert one == make_plan(repository="r", tags=3, pushes=60, seed=7)
    assert one != make_plan(repository="r", tags=3, pushes=60, seed=8)


def test_plan_pushes_every_build_twice():
    """Each build is pushed `copies` times with the same manifest (identical re-push)."""
    plan = make_plan(repository="r", tags=2, pushes=40, seed=1, copies=2)
    assert 40 == len(plan)
    assert 40 == len({spec.request_id for spec in plan})
    by_build: dict[tuple[str, int], set[str]] = {}
    for spec in plan:
        by_build.setdefault((spec.tag, spec.sequence), set()).add(spec.digest)
        assert manifest_digest(spec.manifest) == spec.digest
        assert spec.sequence == sequence_of(spec.manifest)
    assert all(len(digests) == 1 for digests in by_build.values())
    assert 20 == len(by_build)


def test_plan_delivers_builds_out_of_order():
    """Builds arrive roughly in order, but some older build comes after a newer one."""
    plan = [s.sequence for s in make_plan(repository="r", tags=1, pushes=100, seed=1)]
    assert plan != sorted(plan)
    assert any(later < earlier for earlier, later in itertools.pairwise(plan))


def test_distinct_builds_have_distinct_digests():
    """Every build of every tag has its own manifest."""
    digests = {spec_for("r", t, s).digest for t in ("a", "b") for s in range(1, 20)}
    assert 38 == len(digests)


def test_ecr_throttling_is_a_client_error():
    """An injected PutImage fault reaches the caller as ECR's ThrottlingException."""
    counters = Counters()
    client = boto_client("ecr", UNREACHABLE, retries=0)
    Faults(ecr_put=1.0, counters=counters).install(ecr=client)
    with pytest.raises(ClientError) as caught:
        client.put_image(repositoryName="repo", imageManifest="{}", imageTag="t")
    assert "ThrottlingException" == caught.value.response["Error"]["Code"]
    assert 1 == counters.injected_ecr


def test_dynamodb_faults_are_throttling_or_5xx():
    """Injected DynamoDB faults are the codes and statuses DynamoDB answers."""
    counters = Counters()
    client = boto_client("dynamodb", UNREACHABLE, retries=0)
    Faults(dynamodb=1.0, counters=counters, seed=3).install(dynamodb=client)
    seen = set()
    for _ in range(20):
        with pytest.raises(ClientError) as caught:
            client.get_item(TableName="t", Key={"pk": {"S": "k"}})
        response = caught.value.response
        seen.add((response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]))
    assert {
        ("ThrottlingException", 400),
        ("ProvisionedThroughputExceededException", 400),
        ("InternalFailure", 500),
        ("ServiceUnavailableException", 503),
    } == seen
    assert 20 == counters.injected_dynamodb


def test_summary_counts_outcomes_and_violations():
    """The summary reports final outcomes, each invariant's count and latencies."""
    attempts = [
        Attempt("a", "w0", "r:t", 1, "sha256:a", 0.0, 0.5, "pushed", token=1, waited_ms=3.0),
        Attempt("b", "w1", "r:t", 1, "sha256:a", 0.0, 1.0, "unchanged", token=2, waited_ms=9.0),
        Attempt("c", "w2", "r:t", 2, "sha256:b", 0.0, None, None),
    ]
    history = History(
        immutable=False,
        requests={"a": "r:t", "b": "r:t", "c": "r:t"},
        sequences={"sha256:a": 1, "sha256:b": 2},
        attempts=attempts,
        final={"r:t": ["sha256:a"]},
    )
    result = RunResult(
        config=RunConfig(pushes=3),
        history=history,
        verdict=check(history),
        counters=Counters(put_calls=1),
        elapsed=1.0,
        not_started=0,
    )
    data = summary(result)
    assert {"lost": 1, "pushed": 1, "unchanged": 1} == data["outcomes"]
    assert 1 == data["violations"]["6"]
    assert not data["ok"]
    assert 1 == data["put_image_calls"]
    assert table([result]).row_count > 10
