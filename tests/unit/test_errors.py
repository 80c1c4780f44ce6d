"""The error tree: one root, exit codes and HTTP statuses per class, did-you-mean hints."""

import inspect

import pytest

from runyard import errors

ERROR_CLASSES = [
    obj
    for name in errors.__all__
    if inspect.isclass(obj := getattr(errors, name)) and issubclass(obj, BaseException)
]


def test_every_error_class_is_listed() -> None:
    assert {c.__name__ for c in ERROR_CLASSES} == {
        "RunyardError",
        "UsageError",
        "DefinitionError",
        "ParameterError",
        "GridError",
        "LoadError",
        "NotFoundError",
        "AuthError",
        "ForbiddenError",
        "ConflictError",
        "OutsideStepError",
        "TransitionError",
        "StoreError",
    }


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_derives_from_the_root(cls: type[errors.RunyardError]) -> None:
    assert issubclass(cls, errors.RunyardError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_drawn_in_the_module_docstring(cls: type[errors.RunyardError]) -> None:
    assert errors.__doc__ is not None
    assert cls.__name__ in errors.__doc__


@pytest.mark.parametrize(
    ("cls", "exit_code", "http_status"),
    [
        (errors.RunyardError, 1, 500),
        (errors.UsageError, 2, 400),
        (errors.DefinitionError, 2, 400),
        (errors.ParameterError, 2, 422),
        (errors.GridError, 2, 422),
        (errors.LoadError, 2, 400),
        (errors.NotFoundError, 2, 404),
        (errors.AuthError, 2, 401),
        (errors.ForbiddenError, 2, 403),
        (errors.ConflictError, 2, 409),
        (errors.OutsideStepError, 1, 500),
        (errors.TransitionError, 1, 409),
        (errors.StoreError, 1, 503),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_exit_codes_and_http_statuses(
    cls: type[errors.RunyardError], exit_code: int, http_status: int
) -> None:
    assert cls.exit_code == exit_code
    assert cls.http_status == http_status
    instance = cls("x")
    assert (instance.exit_code, instance.http_status) == (exit_code, http_status)


def test_usage_errors_are_the_users_fault() -> None:
    for cls in (errors.DefinitionError, errors.ParameterError, errors.GridError, errors.LoadError):
        assert issubclass(cls, errors.UsageError)
    for cls in (
        errors.NotFoundError,
        errors.OutsideStepError,
        errors.TransitionError,
        errors.StoreError,
    ):
        assert not issubclass(cls, errors.UsageError)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_default_message_is_the_docstring(cls: type[errors.RunyardError]) -> None:
    error = cls()
    assert error.message
    assert error.message == (cls.__doc__ or "").strip()
    assert str(error) == error.message


def test_given_message_is_kept() -> None:
    error = errors.ParameterError("Step 'transform' has no parameter 'factr'")
    assert error.message == "Step 'transform' has no parameter 'factr'"
    assert str(error) == error.message


def test_did_you_mean_suggests_the_closest_and_lists_all_sorted() -> None:
    assert (
        errors.did_you_mean("factr", ["limit", "factor"])
        == "; did you mean 'factor'? Known: factor, limit"
    )


def test_did_you_mean_without_a_close_match_still_lists_the_known() -> None:
    assert errors.did_you_mean("zzz", ["limit", "factor"]) == "; Known: factor, limit"


def test_did_you_mean_with_nothing_known() -> None:
    assert errors.did_you_mean("factor", []) == "; there are none"


def test_did_you_mean_takes_any_iterable() -> None:
    assert "did you mean 'candy'" in errors.did_you_mean("candi", {"candy": 1, "fruit": 2})
