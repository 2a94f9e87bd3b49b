"""The volume role (cirrus/storage/volumes/manager.py): the backend work it runs, the
conditional status changes, duplicates that change nothing, and the sweeper that leaves
nothing creating, deleting or extending when a message was lost or the role died."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from cirrus.context import RequestContext
from cirrus.db.models import Volume, VolumeSnapshot, utcnow
from cirrus.runtime import Cloud
from cirrus.storage.volumes import snapshots, states, volumes
from cirrus.storage.volumes.backends.fake import FakeBackend
from cirrus.storage.volumes.manager import VolumeManager
from cirrus.storage.volumes.rpcapi import CreateVolume, DeleteVolume, ExtendVolume
from tests.api.volume_helpers import volume_cloud

CTX = RequestContext(user_id="u-1", project_id="p-1", roles=["member", "reader"])


@pytest.fixture
def cloud(settings) -> Iterator[Cloud]:
    yield from volume_cloud(settings, task_redrive_after=30.0, volume_task_timeout=300.0)


def manager_of(cloud: Cloud) -> VolumeManager:
    return next(r for r in cloud.roles if isinstance(r, VolumeManager))


def record(cloud: Cloud, size: int = 1) -> str:
    """A volume recorded `creating` whose message was never sent."""
    return cloud.db.run(lambda s: volumes.create_volume(
        s, CTX, cloud.settings, volumes.VolumeSpec(size=size)).id)


def age(cloud: Cloud, model: type[Volume] | type[VolumeSnapshot], record_id: str,
        seconds: float) -> None:
    then = utcnow() - dt.timedelta(seconds=seconds)
    cloud.db.run(lambda s: s.execute(update(model).where(model.id == record_id)
                                     .values(status_changed_at=then)))


def status_of(cloud: Cloud, model: type[Volume] | type[VolumeSnapshot],
              record_id: str) -> tuple[str, str | None]:
    with cloud.db.reader() as s:
        row = s.get(model, record_id)
        return row.status, row.error


def wait_status(cloud: Cloud, model: type[Volume] | type[VolumeSnapshot], record_id: str,
                status: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if status_of(cloud, model, record_id)[0] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"{record_id}: {status_of(cloud, model, record_id)}, not {status}")


def test_a_lost_create_is_sent_again_by_the_sweeper(cloud):
    manager = manager_of(cloud)
    vid = record(cloud)
    assert manager.sweep() == 0
    assert status_of(cloud, Volume, vid)[0] == states.CREATING  # too young to re-drive
    age(cloud, Volume, vid, 31)
    assert manager.sweep() == 0
    wait_status(cloud, Volume, vid, states.AVAILABLE)
    backend = manager.backends["fake"]
    assert isinstance(backend, FakeBackend) and backend.volumes[vid] == 1


def test_past_the_timeout_every_transitional_state_ends_in_its_error(cloud):
    manager = manager_of(cloud)
    creating = record(cloud)
    extending = record(cloud)
    deleting = record(cloud)
    manager.create_volume(CTX, CreateVolume(volume_id=extending))
    manager.create_volume(CTX, CreateVolume(volume_id=deleting))
    sid = cloud.db.run(lambda s: snapshots.create_snapshot(
        s, CTX, cloud.settings, deleting, name=None, description=None, force=False,
        metadata={}).id)
    cloud.db.run(lambda s: volumes.transition(s, extending, (states.AVAILABLE,),
                                              states.EXTENDING))
    cloud.db.run(lambda s: volumes.transition(s, deleting, (states.AVAILABLE,),
                                              states.DELETING))
    for vid in (creating, extending, deleting):
        age(cloud, Volume, vid, 301)
    age(cloud, VolumeSnapshot, sid, 301)
    assert manager.sweep() == 4
    assert status_of(cloud, Volume, creating)[0] == states.ERROR
    assert status_of(cloud, Volume, extending)[0] == states.ERROR_EXTENDING
    status, error = status_of(cloud, Volume, deleting)
    assert status == states.ERROR_DELETING and "volume_task_timeout" in (error or "")
    assert status_of(cloud, VolumeSnapshot, sid)[0] == states.ERROR
    assert manager.sweep() == 0  # ended once


def test_a_duplicate_or_late_message_changes_nothing(cloud):
    manager = manager_of(cloud)
    vid = record(cloud, size=2)
    manager.create_volume(CTX, CreateVolume(volume_id=vid))
    assert status_of(cloud, Volume, vid)[0] == states.AVAILABLE
    backend = manager.backends["fake"]
    assert isinstance(backend, FakeBackend)
    calls = list(backend.calls)
    manager.create_volume(CTX, CreateVolume(volume_id=vid))  # redelivered
    manager.extend_volume(CTX, ExtendVolume(volume_id=vid, new_size=9))  # not extending
    assert backend.calls == calls
    with cloud.db.reader() as s:
        assert s.get(Volume, vid).size == 2
    # a transition from a state the volume is not in writes nothing
    assert not cloud.db.run(lambda s: volumes.transition(s, vid, (states.CREATING,),
                                                         states.ERROR))
    assert status_of(cloud, Volume, vid)[0] == states.AVAILABLE


def test_a_backend_that_cannot_load_fails_volumes_with_the_reason(cloud):
    manager = manager_of(cloud)
    manager.backends = {}
    manager.load_error = "volume backend 'x': unknown kind 'nope'"
    vid = record(cloud)
    manager.create_volume(CTX, CreateVolume(volume_id=vid))
    status, error = status_of(cloud, Volume, vid)
    assert status == states.ERROR and "unknown kind 'nope'" in (error or "")
    # and it can be deleted: it holds no data
    cloud.db.run(lambda s: volumes.request_delete(s, CTX, vid))
    manager.delete_volume(CTX, DeleteVolume(volume_id=vid))
    with cloud.db.reader() as s:
        assert s.get(Volume, vid).deleted


def test_load_failure_is_kept_and_the_role_still_serves(settings):
    settings.volume_backends = {"x": "nope"}
    manager = VolumeManager(Cloud(settings))
    try:
        manager.start()
        assert manager.backends == {} and "unknown kind 'nope'" in (manager.load_error or "")
    finally:
        manager.stop()


def test_volume_is_a_role_and_the_local_bus_needs_only_the_core_four() -> None:
    from cirrus.config import Settings
    from cirrus.runtime import ConfigurationError, check_bus_for_roles, parse_roles

    assert parse_roles("volume,api") == ["api", "volume"]
    check_bus_for_roles(Settings(), ["api", "conductor", "scheduler", "agent"])
    check_bus_for_roles(Settings(), ["api", "conductor", "scheduler", "agent", "volume"])
    with pytest.raises(ConfigurationError, match="needs a message broker"):
        check_bus_for_roles(Settings(), ["volume"])
    check_bus_for_roles(Settings(broker_urls=["amqp://rabbit//"]), ["volume"])
