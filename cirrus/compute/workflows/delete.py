"""The delete workflow: destroy the VM, release what it held, mark the record deleted.

Delete is accepted from every state (the API sets the task `deleting`); it wins every race,
since every other step's conditional update then finds the instance gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.bus import BusTimeout, RemoteError
from cirrus.compute import actions, l2peers, networking, states
from cirrus.compute.lifecycle import transition
from cirrus.compute.workflows import resize, shelve
from cirrus.compute.workflows.build import forget_build_secrets
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.compute.workflows.volumes import release_on_delete
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow
from cirrus.network import enforcement
from cirrus.scheduler import claims

EVENT = "compute_terminate_instance"


def delete_instance(deps: WorkflowDeps, ctx: RequestContext, payload: dict[str, Any]) -> None:
    uuid = payload["uuid"]
    with deps.db.reader() as s:
        inst = s.scalar(select(Instance).where(Instance.uuid == uuid))
        if inst is None or inst.deleted:
            return
        host = inst.host
    if host:
        try:
            deps.agents.destroy(ctx, host, uuid, timeout=deps.settings.rpc_timeout)
        except (BusTimeout, RemoteError) as exc:
            # The agent's next report finds the VM orphaned and destroys it.
            log.warning("destroy of %s on %s failed, deleting the record anyway: %s",
                        uuid, host, exc)

    def finish(s: Session) -> tuple[list[dict[str, Any]], set[str]]:
        claims.release(s, uuid)
        resize.release_migration_claims(s, uuid)  # resize (comp-b): the old claim too
        nics = s.scalar(select(Instance.nics).where(Instance.uuid == uuid,
                                                    Instance.deleted.is_(False)))
        hosts = enforcement.hosts_for_ports(s, [n["port_id"] for n in nics or []])
        networking.deallocate(s, nics or [])
        now = utcnow()
        done = transition(s, uuid, "deleted", where=(Instance.deleted.is_(False),),
                          deleted=True, deleted_at=now, terminated_at=now,
                          task_started_at=None, power_state=states.NOSTATE)
        if done:
            forget_build_secrets(s, uuid)
            actions.record_event(s, uuid, ctx.request_id, EVENT, host, actions.SUCCESS)
        return list(nics or []), hosts

    gone, hosts = deps.db.run(finish)
    release_on_delete(deps, ctx, uuid)  # issue 15: its volumes detached (or deleted)
    # The ports left their groups and their host (issue 14, sg), and their networks' other
    # hosts forget them (l2).
    enforcement.send(deps.db, deps.agents, ctx, hosts)
    l2peers.push_networks(deps.db, deps.agents, ctx, l2peers.network_ids(gone))
    shelve.forget_shelved_image(deps, uuid)  # shelve (comp-b): a shelved server's image
    log.info("instance %s deleted", uuid)
