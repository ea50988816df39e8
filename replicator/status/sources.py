"""What ``replicator status`` reads besides the control store: Kafka offsets and processes' /metrics.

Both are cheap enough to read every refresh: the consumer groups' committed offsets against
the partitions' watermarks (no record is read, so the lag counts a transaction marker as a
message: "about" that many), and a Prometheus text page per process. Neither creates state:
the offset reader never joins a group or commits.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from replicator.adapters import kafka
from replicator.errors import BrokerUnavailable, ProbeError
from replicator.settings import KafkaSettings


@dataclass(frozen=True)
class TopicOffsets:
    messages: int  # retained messages: high - low watermark, summed over partitions
    behind: dict[str, int]  # per consumer group: high watermark - committed (from low when none)


class OffsetSource(Protocol):
    def offsets(self, topics: Sequence[str], groups: Sequence[str]) -> dict[str, TopicOffsets]:
        """Per topic that exists (missing topics are left out)."""
        ...


class KafkaOffsets:
    """Committed offsets of groups and partition watermarks, through one short-lived consumer."""

    def __init__(self, cfg: KafkaSettings, timeout_s: float = 5.0) -> None:
        self._cfg = cfg
        self._timeout_s = timeout_s

    def offsets(self, topics: Sequence[str], groups: Sequence[str]) -> dict[str, TopicOffsets]:
        try:
            with kafka.kafka_errors("reading offsets for the status"):
                return self._read(topics, groups)
        except BrokerUnavailable as exc:
            raise ProbeError(f"Kafka unreachable: {exc}") from exc

    def _read(self, topics: Sequence[str], groups: Sequence[str]) -> dict[str, TopicOffsets]:
        readers = {g: kafka.consumer(self._cfg, g) for g in groups}
        probe = readers[groups[0]] if groups else kafka.consumer(self._cfg, "replicator-status")
        try:
            md = probe.list_topics(timeout=self._timeout_s)
            tps = [kafka.TopicPartition(t, p) for t in topics if t in md.topics and md.topics[t].error is None
                   for p in sorted(md.topics[t].partitions)]
            marks: dict[tuple[str, int], tuple[int, int]] = {}
            for tp in tps:
                marks[(tp.topic, tp.partition)] = probe.get_watermark_offsets(tp, timeout=self._timeout_s)
            out: dict[str, TopicOffsets] = {}
            messages: dict[str, int] = defaultdict(int)
            for (topic, _), (low, high) in marks.items():
                messages[topic] += max(0, high - low)
            behind: dict[str, dict[str, int]] = defaultdict(dict)
            for group, reader in readers.items():
                for tp in (reader.committed(tps, timeout=self._timeout_s) if tps else []):
                    low, high = marks[(tp.topic, tp.partition)]
                    start = tp.offset if tp.offset >= 0 else low
                    behind[tp.topic][group] = behind[tp.topic].get(group, 0) + max(0, high - start)
            for topic in messages:
                out[topic] = TopicOffsets(messages[topic], dict(behind.get(topic, {})))
            return out
        finally:
            for reader in {id(r): r for r in [*readers.values(), probe]}.values():
                reader.close()


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text page -> ``{metric sample name: value summed over its labels}``
    (``replicator_*`` samples only; histogram buckets left out)."""
    out: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("replicator_") and not sample.name.endswith("_bucket"):
                out[sample.name] += float(sample.value)
    return dict(out)


def scrape(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """One process's /metrics (``{"error": ...}`` when it does not answer)."""
    if not url.startswith(("http://", "https://")):
        return {"error": f"not an http(s) URL: {url}"}
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 -- http(s) only, checked above
            return parse_metrics(resp.read().decode("utf-8", "replace"))
    except (OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
