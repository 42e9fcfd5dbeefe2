"""Stress runs talk to the session's moto (LocalAWS) with ECR fidelity installed, so a
tag repair finds the old image (moto would delete it) and immutable conflicts answer
ImageTagAlreadyExistsException, as ECR does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ecr_fidelity import EcrFidelity, ecr_fidelity


@pytest.fixture(autouse=True)
def fidelity(moto_endpoint: str) -> Iterator[EcrFidelity]:
    with ecr_fidelity() as installed:
        yield installed
