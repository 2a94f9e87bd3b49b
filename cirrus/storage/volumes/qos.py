"""QoS specs: named limits (total/read/write IOPS and bytes per second) associated with
volume types; the compute side applies them as libvirt `iotune` at attach."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.db.models import QosSpec, VolumeType
from cirrus.errors import BadRequest, Conflict, NotFound

CONSUMERS = ("front-end", "back-end", "both")
# The keys Cirrus applies (libvirt iotune's, Cinder's front-end names); others are kept.
KNOWN_KEYS = ("total_bytes_sec", "read_bytes_sec", "write_bytes_sec", "total_iops_sec",
              "read_iops_sec", "write_iops_sec")


def _check_values(specs: dict[str, str]) -> None:
    for key in KNOWN_KEYS:
        if key in specs and not str(specs[key]).isdigit():
            raise BadRequest(f"Invalid input for field/attribute qos_specs/{key}. "
                             f"Value: {specs[key]}. It must be a non-negative integer.")


def list_specs(s: Session) -> list[QosSpec]:
    return list(s.scalars(select(QosSpec).order_by(QosSpec.name)))


def get_spec(s: Session, spec_id: str) -> QosSpec:
    row = s.get(QosSpec, spec_id) if len(spec_id) <= 36 else None
    if row is None:
        raise NotFound(f"QoS Specs {spec_id} could not be found.")
    return row


def create_spec(s: Session, name: str, consumer: str, specs: dict[str, str]) -> QosSpec:
    if consumer not in CONSUMERS:
        raise BadRequest(f"Invalid input for field/attribute qos_specs/consumer. Value: "
                         f"{consumer}. It must be one of {', '.join(CONSUMERS)}.")
    _check_values(specs)
    if s.scalar(select(QosSpec.id).where(QosSpec.name == name)):
        raise Conflict(f"QoS Specs {name} already exists.")
    row = QosSpec(id=str(uuid.uuid4()), name=name, consumer=consumer, specs=dict(specs))
    s.add(row)
    s.flush()
    return row


def update_spec(s: Session, spec_id: str, specs: dict[str, str]) -> QosSpec:
    row = get_spec(s, spec_id)
    consumer = specs.pop("consumer", None)
    if consumer is not None:
        if consumer not in CONSUMERS:
            raise BadRequest(f"Invalid input for field/attribute qos_specs/consumer. Value: "
                             f"{consumer}. It must be one of {', '.join(CONSUMERS)}.")
        row.consumer = consumer
    _check_values(specs)
    row.specs = {**(row.specs or {}), **specs}
    s.flush()
    return row


def unset_keys(s: Session, spec_id: str, keys: list[str]) -> None:
    row = get_spec(s, spec_id)
    specs = dict(row.specs or {})
    missing = [k for k in keys if k not in specs]
    if missing:
        raise NotFound(f"QoS spec {spec_id} has no key {missing[0]}.")
    row.specs = {k: v for k, v in specs.items() if k not in keys}


def associations(s: Session, spec_id: str) -> list[VolumeType]:
    get_spec(s, spec_id)
    return list(s.scalars(select(VolumeType).where(VolumeType.qos_specs_id == spec_id)
                          .order_by(VolumeType.name)))


def delete_spec(s: Session, spec_id: str, force: bool) -> None:
    row = get_spec(s, spec_id)
    types = associations(s, spec_id)
    if types and not force:
        raise BadRequest(f"QoS Specs {spec_id} is still associated with entities.")
    for vtype in types:
        vtype.qos_specs_id = None
    s.flush()
    s.delete(row)


def _type(s: Session, type_id: str) -> VolumeType:
    vtype = s.get(VolumeType, type_id) if len(type_id) <= 36 else None
    if vtype is None:
        raise NotFound(f"Volume type {type_id} could not be found.")
    return vtype


def associate(s: Session, spec_id: str, type_id: str) -> None:
    get_spec(s, spec_id)
    vtype = _type(s, type_id)
    if vtype.qos_specs_id and vtype.qos_specs_id != spec_id:
        raise BadRequest(f"Type {type_id} is already associated with another qos specs: "
                         f"{vtype.qos_specs_id}")
    vtype.qos_specs_id = spec_id


def disassociate(s: Session, spec_id: str, type_id: str) -> None:
    get_spec(s, spec_id)
    vtype = _type(s, type_id)
    if vtype.qos_specs_id == spec_id:
        vtype.qos_specs_id = None


def disassociate_all(s: Session, spec_id: str) -> None:
    for vtype in associations(s, spec_id):
        vtype.qos_specs_id = None
