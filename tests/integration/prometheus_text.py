"""Reading a /metrics answer in the tests."""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text answer, keyed `name{label="value",...}` (labels
    sorted; bare `name` without labels). Fails when the answer gives a family twice."""
    families = list(text_string_to_metric_families(text))
    repeated = [n for n, c in Counter(f.name for f in families).items() if c > 1]
    assert not repeated, f"metric families given more than once: {repeated}"
    found: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found
