"""Creating servers: the checks (flavor, image, quotas, zones, security groups, forced
destinations) and the records a create makes before the conductor builds them. Knows
nothing of HTTP."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus import build_secrets
from cirrus.bus import BusTimeout
from cirrus.compute import (
    actions,
    block_devices,
    flavors,
    instances,
    keypairs,
    lifecycle,
    networking,
    quotas,
    states,
    user_quotas,
)
from cirrus.compute.rpcapi import ConductorAPI
from cirrus.context import RequestContext
from cirrus.db.models import (
    Flavor,
    Image,
    Instance,
    InstanceAction,
    InstanceActionEvent,
    InstanceFault,
    SecurityGroup,
    utcnow,
)
from cirrus.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from cirrus.hosts import records, zones
from cirrus.network import security_groups as sg
from cirrus.storage import images

if TYPE_CHECKING:
    from cirrus.config import Settings
    from cirrus.services import Deps

log = logging.getLogger(__name__)


@dataclass
class CreateRequest:
    name: str
    flavor_ref: str
    image_ref: str | None
    networks: object = "auto"
    min_count: int = 1
    max_count: int = 1
    key_name: str | None = None
    metadata: dict = field(default_factory=dict)
    user_data: str | None = None
    availability_zone: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=lambda: ["default"])
    config_drive: bool = False
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    admin_pass: str | None = None
    hostname: str | None = None
    injected_files: list[tuple[str, bytes]] = field(default_factory=list)
    # An admin's forced destination ("AZ:HOST", "AZ::NODE", "AZ:HOST:NODE"); the API checks
    # the caller may force one (Nova's os_compute_api:servers:create:forced_host).
    forced_host: str | None = None
    forced_node: str | None = None
    # issue 15: the block device mappings that become volumes (cirrus.compute.block_devices);
    # image_ref None and one with boot_index 0 among them: the server boots from a volume.
    block_devices: list[dict] = field(default_factory=list)



def build_request_spec(req: CreateRequest, requested_networks: object, uuid: str,
                       settings: Settings) -> dict:
    spec: dict = {"networks": requested_networks}
    try:
        sealed = build_secrets.seal(settings, uuid, build_secrets.BuildSecrets(
            admin_pass=req.admin_pass, injected_files=list(req.injected_files)))
    except (build_secrets.BuildSecretsError, OSError) as exc:
        log.error("cannot seal build secrets: %s", exc)  # names the file, for the operator
        raise ServiceUnavailable("The server cannot be created: the build secrets key of "
                                 "this API is unusable (see its log).") from exc
    if sealed:
        spec[build_secrets.SEALED] = sealed
    return spec




def _flavor_for(s: Session, ctx: RequestContext, flavor_ref: str) -> Flavor:
    try:
        return flavors.get_flavor_for_project(s, flavor_ref, ctx)
    except NotFound as exc:  # Nova answers an unusable flavorRef with 400
        raise BadRequest(exc.message) from exc


def _image_for(s: Session, ctx: RequestContext, image_ref: str | None) -> Image:
    if not image_ref:
        raise BadRequest("An image is required: booting from volume is not supported yet.")
    ref = image_ref.rstrip("/").rsplit("/", 1)[-1]
    image = s.get(Image, ref)
    if image is None or not images.can_see(s, ctx, image):
        raise BadRequest(f"Image {ref} could not be found.")
    if image.status != "active":
        raise BadRequest(f"Image {ref} is not active.")
    return image


def flavor_snapshot(flavor: Flavor) -> dict:
    return {"flavorid": flavor.flavorid, "name": flavor.name, "vcpus": flavor.vcpus,
            "ram": flavor.memory_mb, "disk": flavor.root_gb, "ephemeral": flavor.ephemeral_gb,
            "swap": flavor.swap, "extra_specs": dict(flavor.extra_specs or {})}


def create(cloud: Deps, ctx: RequestContext, req: CreateRequest) -> tuple[list[Instance], str]:
    """Record the instances (BUILD/scheduling) and hand them to the conductor."""
    requested_networks = networking.parse_requested(req.networks)
    if req.min_count > req.max_count:
        raise BadRequest("min_count must be <= max_count")
    settings = cloud.settings
    # The most one request may make, whatever the quotas (unlimited ones included): the work
    # of a create is bounded by the deployment, not by a number the client sends.
    most = max(1, settings.max_servers_per_request)
    if req.min_count > most:
        raise BadRequest(f"min_count may not be greater than {most}, the most servers one "
                         "request may create.")
    if req.max_count > most:
        req = dataclasses.replace(req, max_count=most)
    reservation_id = f"r-{secrets.token_hex(4)}"
    # The API checked both (an authenticated request, a project-scoped token).
    if not ctx.user_id:
        raise Unauthorized()
    if not ctx.project_id:
        raise Forbidden("This action needs a project-scoped token.")
    user_id, project_id = ctx.user_id, ctx.project_id

    # Everything that only reads runs before the write transaction: on SQLite the write lock
    # is the one thing every role queues on, so it is held for the inserts alone.
    with cloud.db.reader() as s:
        flavor = _flavor_for(s, ctx, req.flavor_ref)
        image = _image_for(s, ctx, req.image_ref) if req.image_ref or not req.block_devices \
            else None
        # issue 15: the sources of its volumes exist, are the caller's, fit Cinder's quotas
        block_devices.check(s, ctx, settings, req.block_devices, req.max_count)
        if image is None:
            pass  # boot from volume: the volume is the root disk, no local one
        elif flavor.root_gb and image.min_disk and image.min_disk > flavor.root_gb:
            raise BadRequest(f"Flavor's disk is too small for requested image. Flavor disk is "
                             f"{flavor.root_gb} GB, minimum requested disk is {image.min_disk} GB.")
        if image is not None and image.min_ram and image.min_ram > flavor.memory_mb:
            raise BadRequest("Flavor's memory is too small for requested image.")
        key_data = None
        if req.key_name:
            try:
                key_data = keypairs.get_keypair(s, user_id, req.key_name).public_key
            except NotFound as exc:
                raise BadRequest("Invalid key_name provided.") from exc
        # The port quota first: it bounds how many NICs the rest of the checks look at.
        fits_ports = networking.count_within_port_quota(s, settings, project_id,
                                                        requested_networks, req.min_count,
                                                        req.max_count)
        if fits_ports < req.max_count:
            log.info("max_count reduced from %d to %d by the port quota", req.max_count,
                     fits_ports)
            req = dataclasses.replace(req, max_count=fits_ports)
        networking.check_requested(s, ctx, requested_networks, req.max_count)
        _check_destination(s, settings, req)
        security_groups = _security_group_names(s, project_id, req.security_groups)
        limits = quotas.get_limits(s, settings, project_id)
        if limits["metadata_items"] != quotas.UNLIMITED and len(req.metadata) > limits["metadata_items"]:
            raise quotas.QuotaExceeded(
                f"Quota exceeded for metadata_items: {len(req.metadata)} requested, "
                f"{limits['metadata_items']} allowed.")
        quotas.check_injected_files(limits, req.injected_files)
        count = _count_within_quota(s, limits, project_id, req, flavor)
        user_quotas.check_instances(s, project_id, user_id, count, flavor.vcpus,
                                    flavor.memory_mb)
    destination = {key: value for key, value in (("force_host", req.forced_host),
                                                 ("force_node", req.forced_node)) if value}
    now = utcnow()
    rows = []
    for index in range(count):
        name = req.name if req.max_count == 1 else f"{req.name}-{index + 1}"
        instance_uuid = str(uuidlib.uuid4())
        rows.append(dict(
            uuid=instance_uuid, display_name=name, display_description=req.description,
            hostname=instances.sanitize_hostname(req.hostname or name), project_id=project_id,
            user_id=user_id, flavor=flavor_snapshot(flavor), vcpus=flavor.vcpus,
            # Boot from volume: no local root disk, so none is claimed (Nova claims 0 GB).
            memory_mb=flavor.memory_mb, root_gb=flavor.root_gb if image is not None else 0,
            image_ref=image.id if image is not None else "",
            key_name=req.key_name, key_data=key_data, user_data=req.user_data,
            availability_zone=req.availability_zone, **lifecycle.create_columns(),
            task_started_at=now, power_state=states.NOSTATE,
            reservation_id=reservation_id, launch_index=index,
            config_drive="True" if req.config_drive else "", access_ip_v4=req.access_ip_v4,
            access_ip_v6=req.access_ip_v6, metadata_items=dict(req.metadata),
            system_metadata={"image_min_disk": str((image.min_disk or 0) if image else 0)},
            tags=list(req.tags), security_groups=list(security_groups),
            request_spec={**build_request_spec(req, requested_networks, instance_uuid,
                                               settings), **destination,
                          **_block_device_spec(req)},
            tried_hosts=[],
            build_attempts=0,
            created_at=now, updated_at=now,
        ))

    tries = 0

    def work(s: Session) -> list[Instance]:
        nonlocal tries
        tries += 1
        if tries > 1:
            # A retry after a connection lost during COMMIT (a database restart): if that
            # commit went through, these rows exist and the create is done; inserting them
            # again would meet their unique uuids (an IntegrityError, a 500).
            done = s.scalars(select(Instance).where(
                Instance.uuid.in_([row["uuid"] for row in rows]))).all()
            if done:
                return list(done)
        created = [Instance(**row) for row in rows]
        s.add_all(created)
        s.flush()
        # Re-count with the new rows in: a concurrent create cannot slip past the quota.
        quotas.check_instances(s, settings, project_id, count, flavor.vcpus, flavor.memory_mb,
                               already_added=True, limits=limits)
        for inst in created:
            actions.start_action(s, ctx, inst.uuid, "create")
        return created

    created = cloud.db.run(work)
    uuids = [i.uuid for i in created]
    try:
        ConductorAPI(cloud.bus).build_instances(ctx, uuids)
    except BusTimeout as exc:
        # No broker took the build: undo the records, so the client's retry cannot make a
        # second server and nothing waits for a build that will never come.
        discarded = cloud.db.run(lambda s: _discard(s, uuids))
        if len(discarded) == len(uuids):
            log.warning("create of %s undone: the build could not be sent (%s)", uuids, exc)
            raise ServiceUnavailable("The message broker is unavailable: the server was not "
                                     "created. Try again shortly.") from exc
        # The message got through after all (only its confirmation was lost): the conductor
        # is building; what it had not reached yet was undone and it will skip.
        log.warning("build of %s sent despite %s; %s undone", uuids, exc, discarded)
        created = [i for i in created if i.uuid not in discarded]
    return created, reservation_id


def _block_device_spec(req: CreateRequest) -> dict:
    if not req.block_devices:
        return {}
    return {block_devices.BLOCK_DEVICES: [dict(b) for b in req.block_devices]}


def _discard(s: Session, uuids: list[str]) -> list[str]:
    """Remove the instances among `uuids` that no conductor has scheduled yet; their uuids.

    If the build message reaches a conductor later, it finds no instance and does nothing."""
    waiting = list(s.scalars(select(Instance.uuid).where(
        Instance.uuid.in_(uuids), Instance.task_state == states.SCHEDULING,
        Instance.host.is_(None)).with_for_update()))
    if waiting:
        action_ids = select(InstanceAction.id).where(InstanceAction.instance_uuid.in_(waiting))
        s.execute(delete(InstanceActionEvent).where(InstanceActionEvent.action_id.in_(action_ids)))
        for model in (InstanceAction, InstanceFault):
            s.execute(delete(model).where(model.instance_uuid.in_(waiting)))
        s.execute(delete(Instance).where(Instance.uuid.in_(waiting)))
    return waiting


def _check_destination(s: Session, settings: Settings, req: CreateRequest) -> None:
    """A forced host or node must be a compute node (400, as Nova's ComputeHostNotFound); a
    zone asked for without one must be a zone with an enabled compute service (400, Nova's
    "The requested availability zone is not available"), not accepted to fail later."""
    if req.forced_host or req.forced_node:
        if not records.has_compute_node(s, host=req.forced_host, node=req.forced_node):
            raise BadRequest(f"Compute host {req.forced_host or req.forced_node} could not be "
                             "found.")
        return
    if req.availability_zone and req.availability_zone not in zones.schedulable_zones(s, settings):
        raise BadRequest("The requested availability zone is not available")


def _security_group_names(s: Session, project_id: str, wanted: list[str]) -> list[str]:
    """The names of the project's security groups given by name or id, as Nova resolves
    them against the caller's project's groups in Neutron: 400 for one it does not have
    (another project's id included), 409 for a name several of its groups share."""
    names: list[str] = []
    groups = None
    for ref in wanted:
        if ref in (sg.DEFAULT_NAME, sg.default_group_id(project_id)):
            name = sg.DEFAULT_NAME  # every project has it (made on first use)
        else:
            if groups is None:
                groups = s.execute(select(SecurityGroup.id, SecurityGroup.name)
                                   .where(SecurityGroup.project_id == project_id)).all()
            by_id = [g.name for g in groups if g.id == ref]
            by_name = [g.name for g in groups if g.name == ref]
            if by_id:
                name = by_id[0]
            elif len(by_name) > 1:
                raise Conflict(f"Multiple security groups found matching '{ref}'. Use an ID "
                               "to be more specific.")
            elif by_name:
                name = by_name[0]
            else:
                raise BadRequest(f"Security group {ref} not found.")
        if name not in names:
            names.append(name)
    return names


def _count_within_quota(s: Session, limits: dict[str, int], project_id: str,
                        req: CreateRequest, flavor: Flavor) -> int:
    """Nova's rule: build max_count if quota allows, else as many as fit, but at least
    min_count (else 403 naming what min_count breaks). Constant time whatever the counts."""
    if all(limits[r] == quotas.UNLIMITED for r in ("instances", "cores", "ram")):
        return req.max_count
    return quotas.count_that_fits(limits, quotas.get_usage(s, project_id), req.min_count,
                                  req.max_count, flavor.vcpus, flavor.memory_mb)
