"""The states tables: what may follow what, and how a job's state follows from its runs."""

import itertools

import pytest

from runyard import errors
from runyard.core import states

R = states.RunState
S = states.StepState
J = states.JobState

RUN_ALLOWED = [(old, new) for old, nexts in states.RUN_TRANSITIONS.items() for new in nexts]
RUN_FORBIDDEN = [
    (old, new) for old, new in itertools.product(R, R) if new not in states.RUN_TRANSITIONS[old]
]
STEP_ALLOWED = [(old, new) for old, nexts in states.STEP_TRANSITIONS.items() for new in nexts]
STEP_FORBIDDEN = [
    (old, new) for old, new in itertools.product(S, S) if new not in states.STEP_TRANSITIONS[old]
]


def test_tables_cover_every_state() -> None:
    assert set(states.RUN_TRANSITIONS) == set(R)
    assert set(states.STEP_TRANSITIONS) == set(S)
    for nexts in states.RUN_TRANSITIONS.values():
        assert nexts <= set(R)
    for nexts in states.STEP_TRANSITIONS.values():
        assert nexts <= set(S)


def test_state_values_are_their_names() -> None:
    # The value is what the store keeps; it must not drift from the name the code uses.
    for enum in (R, S, J):
        for member in enum:
            assert member.value == member.name
            assert str(member) == member.name


@pytest.mark.parametrize(("old", "new"), RUN_ALLOWED, ids=lambda s: str(s))
def test_every_allowed_run_transition_passes(old: states.RunState, new: states.RunState) -> None:
    states.check_run_transition(old, new)


@pytest.mark.parametrize(("old", "new"), STEP_ALLOWED, ids=lambda s: str(s))
def test_every_allowed_step_transition_passes(old: states.StepState, new: states.StepState) -> None:
    states.check_step_transition(old, new)


def test_every_forbidden_run_transition_raises() -> None:
    assert len(RUN_FORBIDDEN) > 50
    for old, new in RUN_FORBIDDEN:
        with pytest.raises(errors.TransitionError) as info:
            states.check_run_transition(old, new)
        assert str(old) in info.value.message
        assert str(new) in info.value.message


def test_every_forbidden_step_transition_raises() -> None:
    for old, new in STEP_FORBIDDEN:
        with pytest.raises(errors.TransitionError) as info:
            states.check_step_transition(old, new)
        assert str(old) in info.value.message
        assert str(new) in info.value.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (R.CREATED, R.RUNNING),  # skips the queue
        (R.QUEUED, R.SUCCESS),  # never ran
        (R.RUNNING, R.SUCCESS),  # skips FINISHING
        (R.RUNNING, R.QUEUED),  # backwards
        (R.SUCCESS, R.FAILURE),
        (R.FAILURE, R.RUNNING),
        (R.KILLED, R.QUEUED),
        (R.RUNNING, R.RUNNING),  # a state does not follow itself
    ],
)
def test_sample_of_forbidden_run_transitions(old: states.RunState, new: states.RunState) -> None:
    with pytest.raises(errors.TransitionError, match=f"{old}.*{new}"):
        states.check_run_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.SUCCESS),  # never ran
        (S.RUNNING, S.PENDING),
        (S.RUNNING, S.SKIPPED),
        (S.SUCCESS, S.FAILURE),
        (S.UPSTREAM_FAILED, S.RUNNING),
        (S.SKIPPED, S.RUNNING),
    ],
)
def test_sample_of_forbidden_step_transitions(old: states.StepState, new: states.StepState) -> None:
    with pytest.raises(errors.TransitionError):
        states.check_step_transition(old, new)


def test_the_designed_run_path_is_allowed() -> None:
    path = [R.CREATED, R.QUEUED, R.STARTING, R.RUNNING, R.EGRESS, R.FINISHING, R.SUCCESS]
    for old, new in itertools.pairwise(path):
        states.check_run_transition(old, new)
    states.check_run_transition(R.RUNNING, R.FINISHING)  # EGRESS is optional
    states.check_run_transition(R.FINISHING, R.FAILURE)


def test_finished_run_states_have_no_way_out() -> None:
    assert {R.SUCCESS, R.FAILURE, R.KILLED} == states.FINISHED_RUN_STATES
    for state in states.FINISHED_RUN_STATES:
        assert states.RUN_TRANSITIONS[state] == frozenset()
        for new in R:
            with pytest.raises(errors.TransitionError):
                states.check_run_transition(state, new)


def test_finished_step_states_have_no_way_out() -> None:
    assert {
        S.SUCCESS,
        S.FAILURE,
        S.SKIPPED,
        S.UPSTREAM_FAILED,
        S.KILLED,
    } == states.FINISHED_STEP_STATES
    for state in states.FINISHED_STEP_STATES:
        for new in S:
            with pytest.raises(errors.TransitionError):
                states.check_step_transition(state, new)


def test_every_unfinished_run_can_be_killed() -> None:
    for state in set(R) - states.FINISHED_RUN_STATES:
        states.check_run_transition(state, R.KILLED)


def test_every_unfinished_step_can_end() -> None:
    for state in set(S) - states.FINISHED_STEP_STATES:
        assert states.STEP_TRANSITIONS[state] & states.FINISHED_STEP_STATES


def test_active_states_are_the_started_unfinished_ones() -> None:
    assert {R.STARTING, R.RUNNING, R.EGRESS, R.FINISHING} == states.ACTIVE_RUN_STATES
    assert not states.ACTIVE_RUN_STATES & states.FINISHED_RUN_STATES


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, J.CREATED),
        ({R.CREATED: 3}, J.CREATED),
        ({R.QUEUED: 2}, J.QUEUED),
        ({R.CREATED: 1, R.QUEUED: 2}, J.QUEUED),
        ({R.QUEUED: 1, R.STARTING: 1}, J.RUNNING),
        ({R.RUNNING: 1}, J.RUNNING),
        ({R.QUEUED: 2, R.SUCCESS: 1}, J.RUNNING),
        ({R.CREATED: 2, R.FAILURE: 1}, J.RUNNING),
        ({R.FINISHING: 1, R.SUCCESS: 4}, J.RUNNING),
        ({R.EGRESS: 1}, J.RUNNING),
        ({R.SUCCESS: 5}, J.SUCCESS),
        ({R.SUCCESS: 5, R.FAILURE: 0, R.KILLED: 0}, J.SUCCESS),
        ({R.SUCCESS: 4, R.FAILURE: 1}, J.FAILURE),
        ({R.FAILURE: 1, R.KILLED: 1}, J.FAILURE),
        ({R.SUCCESS: 4, R.KILLED: 1}, J.KILLED),
        ({R.KILLED: 2}, J.KILLED),
    ],
)
def test_job_state_is_derived_from_run_counts(
    counts: dict[states.RunState, int], expected: states.JobState
) -> None:
    assert states.job_state(counts) is expected


def test_every_job_state_can_be_derived() -> None:
    reached = {
        states.job_state(c)
        for c in (
            {R.CREATED: 1},
            {R.QUEUED: 1},
            {R.RUNNING: 1},
            {R.SUCCESS: 1},
            {R.FAILURE: 1},
            {R.KILLED: 1},
        )
    }
    assert reached == set(J)
