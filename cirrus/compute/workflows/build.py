"""The build workflow: scheduling -> spawning -> active, a retry on another host, or error.

The API inserts the instance in building/scheduling and casts `build_instances`. The
conductor makes its ports, asks the scheduler for a host (the claim moves it to spawning)
and casts `spawn` to that host's agent, whose `spawn_result` ends the build: active, a
retry on a host not tried yet while attempts are left, or error with a fault.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, instances, l2peers, networking, specs, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.workflows import boot_volumes, shelve
from cirrus.compute.workflows.build_errors import BUILD_ERRORS, attempts_fault, record_build_error
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow
from cirrus.errors import CirrusError, is_transient
from cirrus.network import enforcement
from cirrus.scheduler import claims
from cirrus.scheduler.rpcapi import SelectDestination

BUILD_EVENT = "compute__do_build_and_run_instance"
BUILD_TASKS = (states.SCHEDULING, states.SPAWNING)


def instance_spec(s: Session, inst: Instance) -> dict[str, Any]:
    """Everything an agent needs to build the VM, as plain data: the agent has no database."""
    return specs.build_spec(s, inst).to_dict()


def forget_build_secrets(s: Session, uuid: str) -> None:
    """Erase the admin password and injected files once the VM has them (or never will)."""
    spec = s.scalar(select(Instance.request_spec).where(Instance.uuid == uuid))
    if spec and any(key in spec for key in instances.BUILD_SECRETS):
        s.execute(update(Instance).where(Instance.uuid == uuid)
                  .values(request_spec=instances.without_build_secrets(spec))
                  .execution_options(synchronize_session=False))


def build_instances(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    for uuid in payload["uuids"]:
        try:
            build(deps, ctx, uuid)
        except Exception as exc:
            if is_transient(exc):
                raise  # the bus redelivers the message; builds already sent are skipped
            log.exception("build of %s failed unexpectedly", uuid)
            fail_build(deps, ctx, uuid, f"Unexpected error while building: {exc}", code=500)


def build(deps: WorkflowDeps, ctx: RequestContext, uuid: str) -> None:
    """Schedule the instance and send it to its host; a build already scheduled is sent
    to its host again."""
    with deps.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted:
            return
        if inst.task_state == states.SPAWNING and inst.host:
            # Scheduled already, by a conductor that may have died before telling the
            # agent (this is a redelivery or a re-drive). Spawning is idempotent.
            log.info("build of %s: already on %s, sending the spawn again", uuid, inst.host)
            deps.agents.spawn(ctx, inst.host, instance_spec(s, inst))
            return
        if inst.task_state != states.SCHEDULING:
            return
    try:
        # issue 15: the block device mappings' volumes made and attached before the spawn
        if not boot_volumes.prepare(deps, ctx, uuid):
            return
    except boot_volumes.BlockDeviceError as exc:
        fail_build(deps, ctx, uuid, f"Build of instance {uuid} aborted: {exc}")
        return
    try:
        prepared = deps.db.run(lambda s: _prepare(deps, s, ctx, uuid))
    except CirrusError as exc:
        if is_transient(exc):
            raise
        # No port or address for it (a full subnet, a port taken meanwhile): say why.
        fail_build(deps, ctx, uuid, f"Build of instance {uuid} aborted: {exc.message}",
                   code=exc.status)
        return
    if prepared is None:
        return
    request, spec = prepared
    try:
        choice = deps.scheduler.select_destination(ctx, request,
                                                   timeout=deps.settings.rpc_timeout)
    except (BusTimeout, RemoteError) as exc:
        if is_transient(exc):
            raise  # the scheduler could not reach the database: the build is redelivered
        fail_build(deps, ctx, uuid, f"The scheduler did not answer: {exc}", code=500)
        return
    if choice.gone:
        return
    if choice.host is None:
        # Members and readers see the explanation without host names; admins all of it.
        fail_build(deps, ctx, uuid, choice.public_reason or choice.reason or "",
                   code=500, details=choice.reason or "", after_attempts=True)
        return
    host = choice.host
    # The scheduler has claimed the resources and recorded the host (task spawning).
    if spec["nics"]:
        def bind(s: Session) -> set[str]:
            networking.bind_host(s, spec["nics"], host)
            return enforcement.hosts_for_ports(s, [n["port_id"] for n in spec["nics"]])

        # The host's filter state (and that of hosts whose groups the new ports join)
        # goes out before the spawn (issue 14, sg).
        enforcement.send(deps.db, deps.agents, ctx, deps.db.run(bind) | {host})
        # Other hosts of its VXLAN networks learn the new ports before the VM boots (l2).
        l2peers.push_networks(deps.db, deps.agents, ctx, l2peers.network_ids(spec["nics"]))
    deps.agents.spawn(ctx, host, spec)


def _prepare(deps: WorkflowDeps, s: Session, ctx: RequestContext,
             uuid: str) -> tuple[SelectDestination, dict[str, Any]] | None:
    """Make the instance's ports (once) and what the scheduler and the agent need."""
    inst = s.scalar(select(Instance).where(Instance.uuid == uuid).with_for_update())
    if inst is None or inst.deleted or inst.task_state != states.SCHEDULING:
        return None
    networking.allocate(s, ctx, deps.settings, inst)
    spec = instance_spec(s, inst)
    pool = spec["storage_pool"]
    if pool and (inst.system_metadata or {}).get("storage_pool") != pool:
        inst.system_metadata = {**(inst.system_metadata or {}), "storage_pool": pool}
    wanted = inst.request_spec or {}
    request = SelectDestination(
        instance_uuid=uuid, vcpus=inst.vcpus, memory_mb=inst.memory_mb, disk_gb=inst.root_gb,
        availability_zone=inst.availability_zone, exclude_hosts=tuple(inst.tried_hosts or []),
        storage_pool=pool, force_host=wanted.get("force_host"),
        force_node=wanted.get("force_node"))
    return request, spec


def spawn_result(deps: WorkflowDeps, ctx: RequestContext, result: dict[str, Any]) -> None:
    uuid, host = result["uuid"], result["host"]
    if result.get("task") == states.UNSHELVING:  # shelve (comp-b): an unshelve's build
        shelve.unshelve_result(deps, ctx, result)
        return
    if not result["ok"]:
        _spawn_failed(deps, ctx, uuid, host, result.get("error") or "unknown error",
                      result.get("details") or "")
        return

    def finish(s: Session) -> bool | None:
        """True: built. False: the VM is not wanted. None: a duplicate report."""
        done = transition(
            s, uuid, "spawned", task_state=states.SPAWNING,
            where=(Instance.host == host, Instance.deleted.is_(False)),
            task_started_at=None, power_state=result.get("power_state", states.RUNNING),
            launched_at=utcnow(), progress=100)
        if done:
            actions.record_event(s, uuid, ctx.request_id, BUILD_EVENT, host, actions.SUCCESS)
            forget_build_secrets(s, uuid)
            nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid))
            networking.bind_host(s, nics or [], host, active=True)
            return True
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if (inst is not None and not inst.deleted and inst.host == host
                and inst.vm_state in (states.ACTIVE, states.STOPPED)):
            return None  # a second spawn of a VM already running here: nothing to do
        return False

    built = deps.db.run(finish)
    if built:
        log.info("instance %s active on %s", uuid, host)
    if built is False:
        # Deleted (or moved) while it was being built: this VM is not wanted.
        deps.agents.destroy(ctx, host, uuid)


def _spawn_failed(deps: WorkflowDeps, ctx: RequestContext, uuid: str, host: str, error: str,
                  details: str) -> None:
    max_attempts = max(1, deps.settings.build_max_attempts)

    def retry_or_fail(s: Session) -> str:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state != states.SPAWNING or inst.host != host:
            return "gone"  # deleted or moved on meanwhile; that path owns the claim
        claims.release(s, uuid)
        tried = list(inst.tried_hosts or []) + [host]
        inst.tried_hosts = tried
        inst.build_attempts = (inst.build_attempts or 0) + 1
        errors = record_build_error(inst, host, error)
        if inst.build_attempts < max_attempts:
            inst.host = inst.node = None
            transition(s, inst, "rescheduled", task_started_at=utcnow())
            return "retry"
        message, summary = attempts_fault(
            errors, f"no attempt left ({inst.build_attempts} of build_max_attempts "
                    f"{max_attempts} made)")
        _set_error(s, ctx, inst, message, f"{summary}\n{details}" if details else summary,
                   host)
        return "failed"

    outcome = deps.db.run(retry_or_fail)
    log.warning("spawn of %s on %s failed (%s): %s", uuid, host, outcome, error)
    if outcome == "retry":
        build(deps, ctx, uuid)
    elif outcome == "failed":  # issue 15: no attempt left, its volumes released
        boot_volumes.clean_up(deps, ctx, uuid)


def _set_error(s: Session, ctx: RequestContext, inst: Instance, message: str, details: str,
               host: str | None, code: int = 500) -> None:
    transition(s, inst, "build_failed", task_started_at=None, power_state=states.NOSTATE)
    inst.request_spec = instances.without_build_secrets(inst.request_spec)
    actions.add_fault(s, inst.uuid, code, message, details, host)
    actions.record_event(s, inst.uuid, ctx.request_id, BUILD_EVENT, host, actions.ERROR,
                         traceback=details or message)


def fail_build(deps: WorkflowDeps, ctx: RequestContext, uuid: str, message: str,
               code: int = 500, details: str = "", *, after_attempts: bool = False) -> None:
    """End a build in ERROR with a fault: `message` for everyone, `details` for admins.

    `after_attempts`: no host is left to try; if earlier attempts failed, the fault says
    what each of them failed with (and `details` why no host was left)."""
    def fail(s: Session) -> tuple[str | None, set[str]]:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted or inst.task_state not in BUILD_TASKS:
            return None, set()
        host = inst.host
        errors = (inst.request_spec or {}).get(BUILD_ERRORS)
        fault_message, fault_details = message, details
        if after_attempts and errors:
            fault_message, fault_details = attempts_fault(errors, message, details)
        claims.release(s, uuid)
        # As Nova: a build given up keeps no ports (the user's are unbound and kept).
        hosts = enforcement.hosts_for_ports(s, [n["port_id"] for n in inst.nics or []])
        networking.deallocate(s, inst.nics)
        inst.nics = []
        _set_error(s, ctx, inst, fault_message, fault_details, host, code)
        return host, hosts

    host, hosts = deps.db.run(fail)
    enforcement.send(deps.db, deps.agents, ctx, hosts)  # the ports left their groups
    # issue 15: its volumes detached, those marked delete_on_termination deleted
    boot_volumes.clean_up(deps, ctx, uuid)
    if host:
        deps.agents.destroy(ctx, host, uuid)
