"""The domain package's public names."""

from __future__ import annotations

import service.domain
from service.domain import errors


def test_all_is_sorted_and_complete() -> None:
    """``service.domain.__all__`` is sorted and exports every PushError subclass."""
    exported = service.domain.__all__
    assert sorted(exported) == exported
    error_names = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.PushError)
    }
    assert error_names <= set(exported)
    assert all(hasattr(service.domain, name) for name in exported)
