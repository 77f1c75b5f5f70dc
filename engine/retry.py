"""Retry rules for failed steps: which error codes are retried and how long to wait.

Deciding is pure: randomness for jitter is injected as ``rand`` so tests are exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from engine.durations import format_duration

__all__ = ["NEVER_RETRIED", "Backoff", "RetryDecision", "RetryPolicy", "decide_retry"]

NEVER_RETRIED: frozenset[str] = frozenset(
    {
        "APPROVAL_REJECTED",
        "APPROVAL_TIMEOUT",
        "VALIDATION_ERROR",
        "INVALID_CONFIG",
        "BUDGET_EXCEEDED",
    }
)


class Backoff(StrEnum):
    """How the wait grows from one retry to the next."""

    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class RetryPolicy:
    """A step's retry block. ``max_attempts`` counts the first attempt too."""

    max_attempts: int = 1
    initial_delay: timedelta = timedelta(seconds=5)
    backoff: Backoff = Backoff.EXPONENTIAL
    backoff_multiplier: float = 2.0
    max_delay: timedelta = timedelta(minutes=5)
    jitter: bool = False
    retryable_errors: frozenset[str] = frozenset()
    non_retryable_errors: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, got {self.max_attempts}")
        if self.initial_delay < timedelta(0) or self.max_delay < timedelta(0):
            raise ValueError("initial_delay and max_delay must not be negative")
        if self.backoff_multiplier <= 0:
            raise ValueError(f"backoff_multiplier must be above 0, got {self.backoff_multiplier}")

    def is_retryable(self, code: str) -> bool:
        """Whether an error with this code may be retried at all (case-insensitive)."""
        return _refusal(self, code.upper()) is None

    def delay_before(self, attempt: int, rand: Callable[[], float] | None = None) -> timedelta:
        """The wait before attempt number ``attempt`` (2 is the first retry; 1 waits nothing).

        fixed: ``initial_delay``; linear: ``initial_delay * (attempt - 1)``; exponential:
        ``initial_delay * multiplier ** (attempt - 2)``; then capped at ``max_delay``. With
        ``jitter`` the capped wait is scaled uniformly into [50%, 100%] using ``rand()``
        (``random.random`` when no ``rand`` is given).
        """
        if attempt <= 1:
            return timedelta(0)
        delay = min(self._raw_delay(attempt), self.max_delay)
        if not self.jitter:
            return delay
        fraction = min(max((rand or random.random)(), 0.0), 1.0)
        return delay * (0.5 + 0.5 * fraction)

    def _raw_delay(self, attempt: int) -> timedelta:
        if self.backoff is Backoff.FIXED:
            return self.initial_delay
        factor: float = attempt - 1
        try:
            if self.backoff is Backoff.EXPONENTIAL:
                factor = float(self.backoff_multiplier) ** (attempt - 2)
            seconds = self.initial_delay.total_seconds() * factor
        except OverflowError:
            return self.max_delay
        # Compare before multiplying the timedelta, which could overflow past the cap.
        if seconds >= self.max_delay.total_seconds():
            return self.max_delay
        return self.initial_delay * factor


@dataclass(frozen=True)
class RetryDecision:
    """Whether to try again, after how long, and why (for the step's history)."""

    retry: bool
    delay: timedelta
    reason: str


def decide_retry(
    policy: RetryPolicy,
    attempt: int,
    error_code: str,
    rand: Callable[[], float] | None = None,
) -> RetryDecision:
    """Decide what follows the failure of attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    code = error_code.upper()
    refusal = _refusal(policy, code)
    if refusal is not None:
        return RetryDecision(retry=False, delay=timedelta(0), reason=refusal)
    failed = f"attempt {attempt} of {policy.max_attempts} failed with {code}"
    if attempt >= policy.max_attempts:
        return RetryDecision(retry=False, delay=timedelta(0), reason=f"{failed}; no attempts left")
    delay = policy.delay_before(attempt + 1, rand)
    shown = format_duration(timedelta(milliseconds=round(delay / timedelta(milliseconds=1))))
    return RetryDecision(retry=True, delay=delay, reason=f"{failed}; retrying in {shown}")


def _refusal(policy: RetryPolicy, code: str) -> str | None:
    """Why ``code`` (upper case) is not retried under ``policy``, or None if it may be."""
    if code in NEVER_RETRIED:
        return f"error code {code} is never retried"
    if code in {c.upper() for c in policy.non_retryable_errors}:
        return f"error code {code} is listed in non_retryable_errors"
    if policy.retryable_errors and code not in {c.upper() for c in policy.retryable_errors}:
        return f"error code {code} is not listed in retryable_errors"
    return None
