"""The instance lifecycle table (cirrus/compute/lifecycle.py), walked whole: every move it
allows is written by `transition`, others are refused, and the machine has no trap."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from cirrus.compute import lifecycle, lifecycle_doc, states
from cirrus.compute.lifecycle import (
    ANY,
    FINAL,
    INITIAL,
    LIVE,
    STATES,
    TIMEOUTS,
    TRANSITIONS,
    IllegalTransition,
    Row,
    transition,
)
from cirrus.config import Settings
from cirrus.db.models import Instance
from cirrus.errors import Conflict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Instance.__table__.create(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def _add(s: Session, state: lifecycle.State) -> str:
    uuid = str(uuidlib.uuid4())
    s.add(Instance(uuid=uuid, display_name="vm", project_id="p", user_id="u", flavor={},
                   vm_state=state[0], task_state=state[1], deleted=state == FINAL))
    s.flush()
    return uuid


def _state(s: Session, uuid: str) -> lifecycle.State:
    row = s.execute(select(Instance.vm_state, Instance.task_state)
                    .where(Instance.uuid == uuid)).one()
    return (row.vm_state, row.task_state)


def _name(row: Row) -> str:
    return f"{row.event}:{row.source[0]}/{row.source[1]}"


@pytest.mark.parametrize("row", TRANSITIONS, ids=_name)
def test_every_allowed_transition_is_written(session: Session, row: Row) -> None:
    uuid = _add(session, row.source)
    assert transition(session, uuid, row.event, vm_state=row.source[0],
                      task_state=row.source[1]) == 1
    assert _state(session, uuid) == row.result


@pytest.mark.parametrize("row", TRANSITIONS, ids=_name)
def test_every_allowed_transition_applies_to_a_loaded_row(session: Session, row: Row) -> None:
    uuid = _add(session, row.source)
    inst = session.scalar(select(Instance).where(Instance.uuid == uuid))
    assert transition(session, inst, row.event) == 1
    session.flush()
    assert _state(session, uuid) == row.result


DISALLOWED = [("start", (states.ACTIVE, None)), ("stop", (states.STOPPED, None)),
              ("spawned", (states.STOPPED, None)), ("scheduled", (states.ACTIVE, None)),
              ("task_done", (states.ACTIVE, None)), ("create_image", (states.ERROR, None)),
              ("reboot", (states.STOPPED, None)), ("vanished", (states.BUILDING, states.SPAWNING)),
              ("deleted", FINAL), ("delete", FINAL), ("rescheduled", (states.ACTIVE, None))]


@pytest.mark.parametrize(("event", "state"), DISALLOWED)
def test_a_move_the_table_does_not_have_is_refused(session: Session, event: str,
                                                   state: lifecycle.State) -> None:
    uuid = _add(session, state)
    with pytest.raises(IllegalTransition):
        transition(session, uuid, event, vm_state=state[0], task_state=state[1])
    inst = session.scalar(select(Instance).where(Instance.uuid == uuid))
    with pytest.raises(IllegalTransition):
        transition(session, inst, event)
    assert _state(session, uuid) == state


def test_every_event_is_refused_from_every_state_it_does_not_leave() -> None:
    for event in lifecycle.EVENTS:
        for state in STATES:
            assert lifecycle.allowed(event, state) == any(
                row.event == event and row.source == state for row in TRANSITIONS)
            if not lifecycle.allowed(event, state):
                with pytest.raises(IllegalTransition):
                    transition(None, "x", event, vm_state=state[0],  # type: ignore[arg-type]
                               task_state=state[1])


def test_an_instance_that_moved_on_is_left_alone(session: Session) -> None:
    """The runtime refusal: the caller expected a state the event leaves; the row is in
    another (a delete or a second conductor won), so nothing is written."""
    uuid = _add(session, (states.ACTIVE, None))
    assert transition(session, uuid, "spawned", task_state=states.SPAWNING) == 0
    assert transition(session, uuid, "build_failed") == 0
    assert transition(session, uuid, "task_failed", task_state=states.POWERING_OFF) == 0
    assert _state(session, uuid) == (states.ACTIVE, None)
    gone = _add(session, FINAL)
    assert transition(session, gone, "deleted", where=(Instance.deleted.is_(False),)) == 0


def test_every_state_is_reachable_from_building() -> None:
    reached, frontier = {INITIAL}, [INITIAL]
    while frontier:
        here = frontier.pop()
        for row in TRANSITIONS:
            if row.source == here and row.result not in reached:
                reached.add(row.result)
                frontier.append(row.result)
    assert reached == set(STATES)


def test_no_state_but_deleted_is_a_dead_end() -> None:
    for state in STATES:
        leaves = {row.result for row in TRANSITIONS if row.source == state} - {state}
        assert bool(leaves) == (state != FINAL), state


def test_every_task_state_has_a_timeout_and_an_exit() -> None:
    settings = Settings()
    tasks = {task for _vm, task in STATES if task is not None}
    assert tasks == set(TIMEOUTS)
    for vm_state, task in STATES:
        if task is None:
            continue
        timeout, event = TIMEOUTS[task]
        assert getattr(settings, timeout) > 0
        ends = [row for row in TRANSITIONS
                if row.source == (vm_state, task) and row.event == event]
        assert ends and all(row.result[1] is None for row in ends), (vm_state, task)
        assert lifecycle.Actor.SWEEPER in ends[0].actors


def test_every_result_is_a_state() -> None:
    for row in TRANSITIONS:
        assert row.source in LIVE and row.result in STATES, row


@pytest.mark.parametrize("action", list(states.ACTIONS))
def test_the_api_checks_agree_with_the_table(action: str) -> None:
    for vm_state, task_state in STATES:
        try:
            states.check_action(action, "x", vm_state, task_state)
            accepted = True
        except Conflict:
            accepted = False
        assert accepted == lifecycle.allowed(action, (vm_state, task_state)), (vm_state, task_state)


def test_task_results_agree_with_the_table() -> None:
    for task, (vm_state, _power) in states.TASK_RESULTS.items():
        event = "spawned" if task == states.SPAWNING else "task_done"
        rows = lifecycle.rows_for(event, ANY, task)
        assert rows and {row.result for row in rows} == {(vm_state, None)}


def test_every_state_is_found_by_the_status_it_shows() -> None:
    for vm_state, task_state in STATES:
        vm_states, task_states = states.STATUS_FILTERS[states.api_status(vm_state, task_state)]
        assert vm_state in vm_states
        assert task_states is None or task_state in task_states


def test_the_created_instance_starts_where_the_table_starts() -> None:
    assert tuple(lifecycle.create_columns().values()) == INITIAL


def test_docs_lifecycle_md_is_generated_from_the_table() -> None:
    checked_in = (ROOT / "docs" / "lifecycle.md").read_text()
    assert checked_in == lifecycle_doc.render(), (
        "docs/lifecycle.md is stale: run scripts/gen-lifecycle")
