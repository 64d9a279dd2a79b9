"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from assistant.pricing import Usage

LATENCY_BUCKETS = (
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.suggestion_latency = Histogram(
            "assistant_suggestion_latency_seconds",
            "From the suggest frame to its done frame, by source of the suggestion",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.suggestions = Counter(
            "assistant_suggestions",
            "Suggestions sent (done frames), by source",
            ["source"],
            registry=r,
        )
        self.requests = Counter(
            "assistant_provider_requests", "Provider requests started", ["kind"], registry=r
        )
        self.cancellations = Counter(
            "assistant_cancellations", "Suggestions and reviews cancelled", ["reason"], registry=r
        )
        self.errors = Counter("assistant_errors", "Error frames sent", ["code"], registry=r)
        self.tokens = Counter(
            "assistant_tokens", "Tokens used, by model and kind", ["model", "kind"], registry=r
        )
        self.cost = Counter("assistant_cost_usd", "Dollars spent, by model", ["model"], registry=r)
        self.rate_limit_events = Counter(
            "assistant_rate_limit_events",
            "Rate limiting: 'provider' (the API said 429) or 'client' (frame-rate cap)",
            ["source"],
            registry=r,
        )
        self.open_connections = Gauge(
            "assistant_open_connections", "WebSocket connections open", registry=r
        )
        self.connections_refused = Counter(
            "assistant_connections_refused", "WebSockets refused", ["reason"], registry=r
        )
        frames = Counter("assistant_frames", "WebSocket frames", ["direction"], registry=r)
        self.frames_in = frames.labels("in")
        self.frames_out = frames.labels("out")
        self.accepted_chars = Counter(
            "assistant_accepted_chars", "Characters of suggestions accepted", registry=r
        )
        # What writers get (the definitions of assistant/usefulness.py, per connection).
        self.suggestions_shown = Counter(
            "assistant_suggestions_shown",
            "Ghosts on screen for at least 250 ms, or accepted",
            registry=r,
        )
        self.suggestions_accepted = Counter(
            "assistant_suggestions_accepted",
            "Shown ghosts the writer took any of within 10 s",
            registry=r,
        )
        self.suggestions_rejected = Counter(
            "assistant_suggestions_rejected",
            "Shown ghosts not accepted within 10 s",
            registry=r,
        )
        self.accept_keys = Counter(
            "assistant_accept_keys",
            "Accept keys pressed (accept frames); saved chars = accepted chars - accept keys",
            registry=r,
        )
        self.saved_chars = Counter(
            "assistant_saved_chars",
            "Characters of suggestions accepted, net of the accept keys pressed",
            registry=r,
        )
        self.pause_to_visible = Histogram(
            "assistant_pause_to_visible_seconds",
            "From the keystroke a writer paused after (300 ms) to a suggestion on screen",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pauses = Counter(
            "assistant_pauses",
            "Pauses in typing, by whether a suggestion was on screen before the next key",
            ["outcome"],
            registry=r,
        )
        self.offline_documents = Gauge(
            "assistant_offline_documents",
            "Documents the offline tier holds a model of (dropped when their connection closes)",
            registry=r,
        )
        for outcome in ("suggestion", "nothing"):  # both series in /metrics from the start, at 0
            self.child(self.pauses, outcome)
        self.keep_warm = Counter(
            "assistant_keep_warm",
            "count_tokens calls that keep the Anthropic connection open while clients idle",
            registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: prometheus_client validates the labels
        and takes a lock on every ``labels()`` call, and a keystroke makes several."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def spent(self, model: str, usage: Usage, cost: float) -> None:
        if not model:
            return
        for kind, n in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_creation", usage.cache_creation_input_tokens),
            ("cache_read", usage.cache_read_input_tokens),
        ):
            if n:
                self.tokens.labels(model, kind).inc(n)
        if cost:
            self.cost.labels(model).inc(cost)

    def render(self) -> bytes:
        return generate_latest(self.registry)
