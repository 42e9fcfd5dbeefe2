"""Prometheus metrics, on a registry per app so tests and two apps in one process
never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pushes = Counter(
            "pushgate_pushes",
            "Pushes answered, by outcome or error code.",
            ["outcome"],
            registry=self.registry,
        )
        self.repairs = Counter(
            "pushgate_tag_repairs",
            "Tags found not matching their record and put back.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
