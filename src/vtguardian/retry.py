"""Trying again, one way for the whole program: exponential backoff, from tenacity.

In-process retries (a deadlock, a locked Pi-hole database, a database restart,
a VirusTotal hiccup) use :func:`retrying`; retries that outlive the process
(the lookup queue, alert webhooks) store their next attempt in the database,
spaced by the same :func:`backoff_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """The wait after ``attempts`` failed attempts: ``base``, doubling, at most ``cap``."""
    return min(cap, base * 2**attempts)


def retrying(
    retry_if: Callable[[BaseException], bool],
    *,
    base: float,
    cap: float,
    attempts: int | None = None,
    within: float | None = None,
    jitter: bool = False,
    sleep: Callable[[float], Any] | None = None,
) -> Retrying:
    """Attempts of a block (``for attempt in retrying(...): with attempt: ...``) that
    are tried again while ``retry_if`` says so of the exception, up to ``attempts``
    or ``within`` seconds, waiting ``base`` seconds doubling up to ``cap``. Jitter
    spreads writers that failed together (a deadlock) apart. The last exception is
    raised as it is."""
    return Retrying(**_policy(retry_if, base, cap, attempts, within, jitter, sleep))


def retrying_async(
    retry_if: Callable[[BaseException], bool],
    *,
    base: float,
    cap: float,
    attempts: int | None = None,
    within: float | None = None,
    jitter: bool = False,
    sleep: Callable[[float], Any] | None = None,
) -> AsyncRetrying:
    """:func:`retrying` for ``async for attempt in ...``; ``sleep`` may be a test's clock."""
    return AsyncRetrying(**_policy(retry_if, base, cap, attempts, within, jitter, sleep))


def _policy(
    retry_if: Callable[[BaseException], bool],
    base: float,
    cap: float,
    attempts: int | None,
    within: float | None,
    jitter: bool,
    sleep: Callable[[float], Any] | None,
) -> dict[str, Any]:
    stops = [stop_after_attempt(attempts)] if attempts else []
    stops += [stop_after_delay(within)] if within is not None else []
    wait = (
        wait_random_exponential(multiplier=base, max=cap)
        if jitter
        else wait_exponential(multiplier=base, max=cap, exp_base=2)
    )
    policy: dict[str, Any] = {
        "retry": retry_if_exception(retry_if),
        "stop": stop_any(*stops) if stops else stop_never,
        "wait": wait,
        "reraise": True,
    }
    if sleep is not None:
        policy["sleep"] = sleep
    return policy
