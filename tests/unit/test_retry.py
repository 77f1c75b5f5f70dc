from collections.abc import Callable
from datetime import timedelta

import pytest

from engine.retry import NEVER_RETRIED, Backoff, RetryDecision, RetryPolicy, decide_retry

S = timedelta(seconds=1)


def policy(**changes: object) -> RetryPolicy:
    values: dict[str, object] = {"max_attempts": 5, "initial_delay": 10 * S, "max_delay": 1000 * S}
    values.update(changes)
    return RetryPolicy(**values)  # type: ignore[arg-type]


def constant(value: float) -> Callable[[], float]:
    return lambda: value


# --- which errors are retried ----------------------------------------------------------------


def test_by_default_a_policy_makes_a_single_attempt() -> None:
    decision = decide_retry(RetryPolicy(), 1, "TIMEOUT")
    assert not decision.retry
    assert decision.reason == "attempt 1 of 1 failed with TIMEOUT; no attempts left"


@pytest.mark.parametrize("code", sorted(NEVER_RETRIED))
def test_rejections_timeouts_and_config_errors_are_never_retried(code: str) -> None:
    assert not policy().is_retryable(code)
    decision = decide_retry(policy(), 1, code)
    assert not decision.retry
    assert decision.reason == f"error code {code} is never retried"


def test_listing_a_never_retried_code_as_retryable_does_not_make_it_retried() -> None:
    assert not policy(retryable_errors=frozenset({"APPROVAL_REJECTED"})).is_retryable(
        "APPROVAL_REJECTED"
    )


def test_any_other_code_is_retried_when_no_retryable_list_is_given() -> None:
    assert policy().is_retryable("TIMEOUT")
    assert policy().is_retryable("AGENT_UNAVAILABLE")


def test_a_code_listed_as_non_retryable_is_not_retried_and_the_reason_says_so() -> None:
    p = policy(non_retryable_errors=frozenset({"AUTH_FAILED"}))
    assert not p.is_retryable("AUTH_FAILED")
    assert decide_retry(p, 1, "AUTH_FAILED").reason == (
        "error code AUTH_FAILED is listed in non_retryable_errors"
    )


def test_a_retryable_list_limits_retries_to_the_listed_codes() -> None:
    p = policy(retryable_errors=frozenset({"TIMEOUT"}))
    assert p.is_retryable("TIMEOUT")
    assert not p.is_retryable("OUTPUT_INVALID")
    assert "not listed in retryable_errors" in decide_retry(p, 1, "OUTPUT_INVALID").reason


def test_error_codes_are_compared_without_regard_to_case() -> None:
    p = policy(non_retryable_errors=frozenset({"auth_failed"}))
    assert not p.is_retryable("AUTH_FAILED")
    assert not p.is_retryable("approval_rejected")


# --- backoff -----------------------------------------------------------------------------------


def test_fixed_backoff_waits_the_initial_delay_every_time() -> None:
    p = policy(backoff=Backoff.FIXED)
    assert [p.delay_before(n) for n in (2, 3, 4, 5)] == [10 * S] * 4


def test_linear_backoff_grows_by_the_initial_delay_each_retry() -> None:
    p = policy(backoff=Backoff.LINEAR)
    assert [p.delay_before(n) for n in (2, 3, 4, 5)] == [10 * S, 20 * S, 30 * S, 40 * S]


def test_exponential_backoff_multiplies_the_wait_each_retry() -> None:
    p = policy(backoff=Backoff.EXPONENTIAL, backoff_multiplier=3.0)
    assert [p.delay_before(n) for n in (2, 3, 4, 5)] == [10 * S, 30 * S, 90 * S, 270 * S]


def test_the_default_backoff_is_exponential_doubling() -> None:
    p = RetryPolicy(max_attempts=4)
    assert [p.delay_before(n) for n in (2, 3, 4)] == [5 * S, 10 * S, 20 * S]


@pytest.mark.parametrize("backoff", list(Backoff))
def test_no_backoff_ever_waits_longer_than_max_delay(backoff: Backoff) -> None:
    p = policy(backoff=backoff, initial_delay=200 * S, max_delay=150 * S)
    assert [p.delay_before(n) for n in (2, 3, 10)] == [150 * S] * 3


def test_growing_backoffs_stop_growing_at_max_delay() -> None:
    p = policy(initial_delay=100 * S, max_delay=150 * S)
    assert [p.delay_before(n) for n in (2, 3, 4)] == [100 * S, 150 * S, 150 * S]
    linear = policy(backoff=Backoff.LINEAR, initial_delay=100 * S, max_delay=150 * S)
    assert [linear.delay_before(n) for n in (2, 3, 4)] == [100 * S, 150 * S, 150 * S]


def test_a_huge_attempt_number_is_capped_instead_of_overflowing() -> None:
    assert policy().delay_before(10_000) == 1000 * S
    assert policy(backoff=Backoff.LINEAR).delay_before(10**12) == 1000 * S


def test_the_first_attempt_has_no_wait() -> None:
    assert policy().delay_before(1) == timedelta(0)


# --- jitter ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 50 * S), (0.5, 75 * S), (0.999, 99.95 * S)])
def test_jitter_scales_the_capped_wait_into_half_to_full(rand: float, expected: timedelta) -> None:
    p = policy(initial_delay=100 * S, max_delay=100 * S, jitter=True)
    assert p.delay_before(5, lambda: rand) == expected


def test_jitter_is_never_above_max_delay_nor_below_half_of_it() -> None:
    p = policy(initial_delay=60 * S, max_delay=60 * S, jitter=True)
    delays = [p.delay_before(4, constant(r / 100)) for r in range(100)]
    assert min(delays) == 30 * S
    assert max(delays) < 60 * S


def test_without_jitter_the_injected_random_source_is_not_used() -> None:
    def explode() -> float:
        raise AssertionError("rand called")

    assert policy().delay_before(3, explode) == 20 * S


def test_jitter_without_an_injected_source_still_stays_in_bounds() -> None:
    p = policy(initial_delay=8 * S, max_delay=8 * S, jitter=True)
    assert all(4 * S <= p.delay_before(2) <= 8 * S for _ in range(50))


# --- decisions ---------------------------------------------------------------------------------


def test_a_failed_attempt_with_attempts_left_is_retried_after_the_backoff_delay() -> None:
    p = RetryPolicy(max_attempts=3, initial_delay=5 * S)
    decision = decide_retry(p, 2, "TIMEOUT")
    assert decision == RetryDecision(
        retry=True, delay=10 * S, reason="attempt 2 of 3 failed with TIMEOUT; retrying in 10s"
    )


def test_the_first_failure_waits_the_initial_delay() -> None:
    decision = decide_retry(RetryPolicy(max_attempts=3), 1, "TIMEOUT")
    assert decision.retry
    assert decision.delay == 5 * S


def test_the_last_attempt_failing_ends_the_retries() -> None:
    decision = decide_retry(RetryPolicy(max_attempts=3), 3, "TIMEOUT")
    assert not decision.retry
    assert decision.delay == timedelta(0)
    assert decision.reason == "attempt 3 of 3 failed with TIMEOUT; no attempts left"


def test_a_jittered_delay_is_shown_rounded_to_milliseconds_in_the_reason() -> None:
    p = RetryPolicy(max_attempts=3, initial_delay=S, jitter=True)
    decision = decide_retry(p, 1, "TIMEOUT", rand=lambda: 0.123456)
    assert decision.delay == timedelta(microseconds=561_728)
    assert decision.reason.endswith("retrying in 562ms")


def test_an_attempt_number_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        decide_retry(RetryPolicy(), 0, "TIMEOUT")


@pytest.mark.parametrize(
    "changes",
    [
        {"max_attempts": 0},
        {"initial_delay": -S},
        {"max_delay": -S},
        {"backoff_multiplier": 0.0},
    ],
)
def test_a_policy_with_impossible_settings_cannot_be_built(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        policy(**changes)


def test_backoff_names_match_the_process_file_values() -> None:
    assert [b.value for b in Backoff] == ["fixed", "linear", "exponential"]
    assert Backoff("linear") is Backoff.LINEAR
