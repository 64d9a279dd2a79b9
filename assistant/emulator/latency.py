"""How long the emulated model takes: time to first token and the gap between tokens.

Time to first token is lognormal, fitted from two quantiles (p50, p95), which is the shape
measured latencies of hosted models have: most requests near the median, a long right tail.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_Z95 = 1.6448536269514722  # standard normal 95th percentile


@dataclass(frozen=True)
class LatencyProfile:
    ttft_p50_ms: float
    ttft_p95_ms: float
    inter_token_ms: float
    jitter: float = 0.25  # inter-token delay is uniform in inter_token_ms * [1-jitter, 1+jitter]

    @property
    def mu(self) -> float:
        return math.log(self.ttft_p50_ms) if self.ttft_p50_ms > 0 else float("-inf")

    @property
    def sigma(self) -> float:
        if self.ttft_p50_ms <= 0 or self.ttft_p95_ms <= self.ttft_p50_ms:
            return 0.0
        return math.log(self.ttft_p95_ms / self.ttft_p50_ms) / _Z95

    def sample_ttft_ms(self, rng: random.Random) -> float:
        if self.ttft_p50_ms <= 0:
            return 0.0
        sigma = self.sigma
        if sigma == 0.0:
            return float(self.ttft_p50_ms)
        return rng.lognormvariate(self.mu, sigma)

    def sample_inter_token_ms(self, rng: random.Random) -> float:
        if self.inter_token_ms <= 0:
            return 0.0
        j = max(0.0, min(1.0, self.jitter))
        return self.inter_token_ms * rng.uniform(1.0 - j, 1.0 + j)


PROFILES: dict[str, LatencyProfile] = {
    "instant": LatencyProfile(0.0, 0.0, 0.0, 0.0),
    "fast": LatencyProfile(20.0, 30.0, 1.0, 0.2),
    "haiku": LatencyProfile(300.0, 800.0, 8.0, 0.25),
    "sonnet": LatencyProfile(900.0, 2000.0, 15.0, 0.25),
}


def resolve_profile(profile: str | LatencyProfile) -> LatencyProfile:
    if isinstance(profile, LatencyProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown latency profile {profile!r}; choose one of {sorted(PROFILES)}"
        ) from None
