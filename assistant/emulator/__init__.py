"""A protocol-faithful Anthropic Messages API on loopback, for tests and benchmarks.

The real ``anthropic`` SDK talks to it unchanged through ``base_url``: streaming and whole
responses, count_tokens, prompt-cache usage, latency profiles and injected faults. Who writes the
suggestions is chosen per run (``predictors``: oracle, noisy at a chosen accuracy, local model).
"""

from .cache import PromptCache, input_token_count
from .latency import PROFILES, LatencyProfile, resolve_profile
from .predictors import PREDICTORS, OracleFileError, load_oracle_file, make_predictor
from .request_rules import min_cacheable_tokens
from .server import FAULT_KINDS, Emulator, EmulatorConfig, Fault, RequestRecord
from .text import count_tokens, review_findings, tokenize
from .thread import EmulatorThread

__all__ = [
    "FAULT_KINDS",
    "PREDICTORS",
    "PROFILES",
    "Emulator",
    "EmulatorConfig",
    "EmulatorThread",
    "Fault",
    "LatencyProfile",
    "OracleFileError",
    "PromptCache",
    "RequestRecord",
    "count_tokens",
    "input_token_count",
    "load_oracle_file",
    "make_predictor",
    "min_cacheable_tokens",
    "resolve_profile",
    "review_findings",
    "tokenize",
]
