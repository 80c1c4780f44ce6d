"""Retry policies and hooks as values: validation with clear messages, which failures a
policy retries, its backoff, and webhook URLs shown without their secret parts."""

from __future__ import annotations

import re

import pytest

from runyard import errors
from runyard.core import hooks, retries


class Flaky(ConnectionError):
    pass


def test_kinds_name_a_class_and_its_bases_most_specific_first() -> None:
    assert retries.kinds_of(ValueError) == ("ValueError", "Exception")
    assert retries.kinds_of(Flaky)[:3] == (
        f"{__name__}.Flaky",
        "ConnectionError",
        "OSError",
    )


@pytest.mark.parametrize(
    ("on", "kinds", "expected"),
    [
        ((), ("ValueError",), True),
        (("ConnectionError",), retries.kinds_of(Flaky), True),  # a base class matches
        (("builtins.ConnectionError",), ("builtins.ConnectionError",), True),
        (("Flaky",), (f"{__name__}.Flaky",), True),  # the short name matches a dotted kind
        (("ValueError",), retries.kinds_of(Flaky), False),
        (("WorkerLost",), ("WorkerLost",), True),
        (("WorkerLost",), ("TimedOut",), False),
    ],
)
def test_a_policy_matches_failures_by_kind(
    on: tuple[str, ...], kinds: tuple[str, ...], expected: bool
) -> None:
    assert retries.RetryPolicy(retries=1, on=on).matches(kinds) is expected


def test_a_policy_allows_retries_until_its_count_is_spent() -> None:
    policy = retries.RetryPolicy.build(2, on=[ConnectionError])
    assert policy.on == ("ConnectionError",)
    assert policy.allows(1, ("ConnectionError",)) and policy.allows(2, ("ConnectionError",))
    assert not policy.allows(3, ("ConnectionError",))
    assert retries.RetryPolicy.from_json(policy.to_json()) == policy


def test_backoff_grows_by_its_factor_and_jitter_stretches_it() -> None:
    policy = retries.RetryPolicy(retries=5, delay=2, backoff=3, jitter=0.5)
    assert [policy.delay_after(n, 0.0) for n in (1, 2, 3)] == [2, 6, 18]
    assert policy.delay_after(2, 0.999) == pytest.approx(6 * 1.4995)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retries": -1}, "retries=-1 (give 0 or more)"),
        ({"delay": -2}, "delay=-2 (give 0 or more seconds)"),
        ({"backoff": 0.5}, "backoff=0.5 (give 1 or more)"),
        ({"jitter": 2}, "jitter=2 (give a fraction from 0 to 1)"),
        ({"on": ("no good",)}, "retry on 'no good' (give an exception name"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_value_and_the_fix(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(errors.UsageError, match="Retry policy not valid") as caught:
        retries.RetryPolicy(**fields)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_a_webhook_is_shown_without_its_path_query_or_user() -> None:
    hook = hooks.Hook(hooks.HookEvent.RUN_FAILURE, "https://bot:pw@hooks.example.com:8443/T0/x?k=1")
    assert hook.is_webhook and hook.display == "https://hooks.example.com:8443/..."
    assert hooks.redact("http://example.com") == "http://example.com"
    function = hooks.Hook(hooks.HookEvent.JOB_COMPLETE, "/srv/notify.py:page")
    assert not function.is_webhook and function.display == "/srv/notify.py:page"
    assert hooks.Hook.from_json(function.to_json()) == function


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("https:///nohost", "has no host"),
        ("mailto:ops@example.com", "neither an http(s) URL nor a function reference"),
        ("notify.py", "neither an http(s) URL nor a function reference"),
        ("notify.py:not a name", "neither an http(s) URL nor a function reference"),
    ],
)
def test_a_bad_hook_target_is_refused(target: str, message: str) -> None:
    with pytest.raises(errors.UsageError, match=re.escape(message)):
        hooks.Hook(hooks.HookEvent.RUN_SUCCESS, target)
