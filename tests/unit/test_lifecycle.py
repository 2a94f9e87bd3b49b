"""Reconciliation after an agent restart, and the sweeper that ends stuck tasks."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select, update

from cirrus.agent.service import Agent
from cirrus.compute import states
from cirrus.db.models import Instance, InstanceFault
from cirrus.virt import load_driver
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status


def _boot(api, cloud, member, name="vm"):
    flavor, image = add_flavor(cloud, name=f"f-{name}"), add_image(cloud)
    r = api.post("/compute/v2.1/servers", json=server_body(flavor, image, name=name),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    return wait_for_status(api, member.compute(), sid, "ACTIVE")


def _restart_agent(cloud, host):
    agent = next(r for r in cloud.roles if isinstance(r, Agent) and r.host == host)
    agent.stop()
    cloud.roles.remove(agent)
    fresh = Agent(cloud.settings, cloud.bus, host, load_driver(cloud.settings, host))
    cloud.roles.append(fresh)
    return fresh


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_restarted_agent_finds_vm_missing_and_server_goes_error_with_fault(api, cloud, member,
                                                                              admin):
    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    fresh = _restart_agent(cloud, host)
    fresh.driver.destroy(server["id"])  # the VM vanished while the agent was down
    fresh.start()
    shown = wait_for_status(api, member.compute(), server["id"], "ERROR")
    assert "no longer on its host" in shown["fault"]["message"]
    assert host not in str(shown["fault"])  # host names are for admins: in the details
    as_admin = wait_for_status(api, admin.compute(), server["id"], "ERROR")
    assert f"no longer on host {host}" in as_admin["fault"]["details"]


def test_restarted_agent_destroys_vm_the_database_deleted(api, cloud, member):
    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    fresh = _restart_agent(cloud, host)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"])
                                     .values(deleted=True, vm_state=states.DELETED)))
    fresh.start()
    assert _wait(lambda: server["id"] not in fresh.driver.list_instances())


def test_restarted_agent_marks_vm_that_shut_down_as_stopped(api, cloud, member):
    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    fresh = _restart_agent(cloud, host)
    fresh.driver.power_off(server["id"])
    fresh.start()
    wait_for_status(api, member.compute(), server["id"], "SHUTOFF")


def test_sweeper_ends_a_build_that_never_finishes(api, cloud, member):
    server = _boot(api, cloud, member)
    long_ago = dt.datetime(2000, 1, 1)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"]).values(
        vm_state=states.BUILDING, task_state=states.SPAWNING, task_started_at=long_ago)))
    conductor = next(r for r in cloud.roles if type(r).__name__ == "Conductor")
    assert conductor.sweep() == 1
    with cloud.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == server["id"]))
        assert (inst.vm_state, inst.task_state) == (states.ERROR, None)
        fault = s.scalar(select(InstanceFault).where(InstanceFault.instance_uuid == inst.uuid))
        assert "Build timed out" in fault.message


def test_sweeper_clears_a_power_task_that_never_finishes(api, cloud, member):
    server = _boot(api, cloud, member)
    long_ago = dt.datetime(2000, 1, 1)
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"]).values(
        task_state=states.POWERING_OFF, task_started_at=long_ago)))
    conductor = next(r for r in cloud.roles if type(r).__name__ == "Conductor")
    assert conductor.sweep() == 1
    shown = wait_for_status(api, member.compute(), server["id"], "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None


def _host_of(cloud, uuid):
    with cloud.db.reader() as s:
        return s.scalar(select(Instance.host).where(Instance.uuid == uuid))


def _conductor(cloud):
    return next(r for r in cloud.roles if type(r).__name__ == "Conductor")


def test_periodic_sync_with_a_list_older_than_the_build_leaves_the_server_alone(api, cloud, member):
    from cirrus.context import RequestContext

    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    # The agent read its VM list a moment before this server finished building.
    _conductor(cloud).reconcile(RequestContext.admin(), host, {}, taken_at=time.time() - 1)
    assert wait_for_status(api, member.compute(), server["id"], "ACTIVE")["status"] == "ACTIVE"


def test_periodic_sync_confirms_a_missing_vm_before_setting_error(api, cloud, member):
    from cirrus.context import RequestContext

    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"])
                                     .values(updated_at=dt.datetime(2000, 1, 1))))
    # A stale list without the VM: the fresh query finds it, so nothing changes.
    _conductor(cloud).reconcile(RequestContext.admin(), host, {}, taken_at=time.time())
    with cloud.db.reader() as s:
        assert s.scalar(select(Instance.vm_state).where(Instance.uuid == server["id"])) == "active"


def test_periodic_sync_does_not_fail_a_build_in_flight(api, cloud, member):
    from cirrus.context import RequestContext

    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"]).values(
        vm_state=states.BUILDING, task_state=states.SPAWNING, updated_at=dt.datetime(2000, 1, 1))))
    agent = next(r for r in cloud.roles if isinstance(r, Agent) and r.host == host)
    agent.driver.destroy(server["id"])  # not built yet, as far as the stale list knows
    _conductor(cloud).reconcile(RequestContext.admin(), host, {}, taken_at=time.time())
    with cloud.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == server["id"]))
        assert (inst.vm_state, inst.task_state, inst.build_attempts) == (
            states.BUILDING, states.SPAWNING, 0)


def test_restarted_agent_builds_again_what_it_lost(api, cloud, member):
    server = _boot(api, cloud, member)
    host = _host_of(cloud, server["id"])
    cloud.db.run(lambda s: s.execute(update(Instance).where(Instance.uuid == server["id"]).values(
        vm_state=states.BUILDING, task_state=states.SPAWNING)))
    fresh = _restart_agent(cloud, host)
    fresh.driver.destroy(server["id"])  # the build was lost with the old agent
    fresh.start()
    assert wait_for_status(api, member.compute(), server["id"], "ACTIVE")["status"] == "ACTIVE"
    assert server["id"] in fresh.driver.list_instances()


def test_simultaneous_first_reports_of_a_new_host_both_land(cloud):
    """A new agent's first heartbeat and full report, queued while the conductor was down,
    reach two conductor workers at once: both must be recorded (neither fails on the other's
    insert), or the host has no compute node until its next full report."""
    import threading

    from cirrus.compute.conductor import Conductor
    from cirrus.context import RequestContext
    from cirrus.db.models import ComputeNode, Service

    conductor = next(r for r in cloud.roles if isinstance(r, Conductor))
    stats = {"vcpus": 4, "memory_mb": 4096, "local_gb": 40, "hypervisor_type": "fake",
             "hypervisor_version": 1, "storage_pools": {}}
    hosts = [f"race-{i}" for i in range(12)]
    barrier = threading.Barrier(2 * len(hosts))
    errors: list[BaseException] = []

    def report(host: str, full: bool) -> None:
        payload = {"host": host, **({"stats": stats} if full else {})}
        barrier.wait()
        try:
            conductor.agent_report(RequestContext.admin(), payload)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(host, full))
               for host in hosts for full in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    with cloud.db.reader() as s:
        nodes = set(s.scalars(select(ComputeNode.host).where(ComputeNode.host.in_(hosts))))
        services = s.execute(select(Service.host, Service.report_count)
                             .where(Service.host.in_(hosts))).all()
    assert nodes == set(hosts)
    assert sorted(h for h, _ in services) == sorted(hosts)  # one row each
    assert all(count == 2 for _, count in services)
