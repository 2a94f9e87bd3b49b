"""Subnet pools (Neutron's subnet_allocation and default-subnetpools extensions).

A pool holds prefixes of one IP version (normalised and merged, as Neutron compacts them)
and the prefix lengths a subnet taken from it may have. A subnet made with
`subnetpool_id` (or `use_default_subnetpool`) gets the first free block of the asked
length (`prefixlen`, else the pool's default) not overlapping the pool's other subnets, or
the `cidr` it names if that is free and inside the pool. The allocation happens in the
subnet-create transaction with the pool's row locked, so two creates cannot take the same
block. Visibility as Neutron's policy: a project sees its own pools and shared ones, an
admin all; only admins make shared or default pools. Checks and errors in Neutron's words.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cirrus.context import RequestContext
from cirrus.db.models import Subnet, SubnetPool
from cirrus.network.access import (
    ADMIN,
    WRITE,
    column_filters,
    new_id,
    owner_for_create,
    owns,
    require,
    require_owner,
)
from cirrus.network.errors import (
    BadAttribute,
    BadL3Request,
    InvalidInput,
    SubnetAllocationError,
    SubnetPoolError,
    SubnetPoolNotFound,
)

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_PREFIXLEN = {4: 32, 6: 128}
DEFAULT_MIN_PREFIXLEN = {4: 8, 6: 64}  # Neutron's SubnetPoolHelper defaults
UPDATABLE = ("name", "description", "default_quota")


def _visible_clause(ctx: RequestContext) -> ColumnElement[bool]:
    return or_(SubnetPool.project_id == ctx.project_id, SubnetPool.shared.is_(True))


def get_subnetpool(s: Session, ctx: RequestContext, subnetpool_id: str,
                   *, lock: bool = False) -> SubnetPool:
    query = select(SubnetPool).where(SubnetPool.id == subnetpool_id)
    if lock:
        query = query.with_for_update()
    pool = s.scalar(query)
    if pool is None or not (owns(ctx, pool.project_id) or pool.shared):
        raise SubnetPoolNotFound(subnetpool_id)
    return pool


def list_subnetpools(s: Session, ctx: RequestContext,
                     filters: dict[str, list]) -> list[SubnetPool]:
    query = select(SubnetPool).where(*column_filters(SubnetPool, filters))
    if not ctx.is_admin:
        query = query.where(_visible_clause(ctx))
    return list(s.scalars(query.order_by(SubnetPool.created_at, SubnetPool.id)))


# ---------------------------------------------------------------- checks


def _prefixes(raw: list) -> tuple[int, list[Net]]:
    """(ip version, the prefixes merged) of a request's prefix list."""
    if not raw:
        raise SubnetPoolError("EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
    nets: list[Net] = []
    for text in raw:
        nets.append(_subnet_cidr(text))
    if len({n.version for n in nets}) > 1:
        raise SubnetPoolError("PrefixVersionMismatch",
                              "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    merged = list(ipaddress.collapse_addresses(nets))  # type: ignore[type-var]
    return nets[0].version, merged


def _subnet_cidr(text: object) -> Net:
    """A prefix as Neutron's API takes it: a CIDR with its length, an IPv4 one without host
    bits."""
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        raise BadAttribute("prefixes", f"'{text}' is not a valid IP subnet") from None
    if "/" not in str(text) or (net.version == 4 and str(net) != text):
        raise BadAttribute("prefixes", f"'{text}' isn't a recognized IP subnet cidr, "
                           f"'{net}' is recommended")
    return net


def _bounds_error(kind: str, value: int, base_kind: str, base: int) -> SubnetPoolError:
    return SubnetPoolError("IllegalSubnetPoolPrefixBounds",
                           f"Illegal prefix bounds: {kind}={value}, {base_kind}={base}.")


def _check_bounds(version: int, low: int, high: int, default: int) -> None:
    """Neutron's SubnetPoolHelper checks, in its order."""
    if low > high:
        raise _bounds_error("min_prefixlen", low, "max_prefixlen", high)
    if high > MAX_PREFIXLEN[version]:
        raise _bounds_error("max_prefixlen", high, "ip_version_max", MAX_PREFIXLEN[version])
    if default < low:
        raise _bounds_error("default_prefixlen", default, "min_prefixlen", low)
    if default > high:
        raise _bounds_error("default_prefixlen", default, "max_prefixlen", high)


def _check_default(s: Session, version: int, except_id: str | None = None) -> None:
    query = select(SubnetPool.id).where(SubnetPool.is_default.is_(True),
                                        SubnetPool.ip_version == version)
    if except_id:
        query = query.where(SubnetPool.id != except_id)
    if s.scalar(query.limit(1)) is not None:
        raise InvalidInput("A default subnetpool for this IP family has already been set. "
                           "Only one default may exist per IP family")


# ---------------------------------------------------------------- records


def create_subnetpool(s: Session, ctx: RequestContext, spec: dict[str, Any]) -> SubnetPool:
    require(ctx, WRITE, "create_subnetpool")
    if spec.get("shared"):
        require(ctx, ADMIN, "create_subnetpool:shared")
    if spec.get("is_default"):
        require(ctx, ADMIN, "create_subnetpool:is_default")
    owner = owner_for_create(ctx, spec.get("project_id"))
    version, prefixes = _prefixes(spec["prefixes"])
    low = spec.get("min_prefixlen", DEFAULT_MIN_PREFIXLEN[version])
    high = spec.get("max_prefixlen", MAX_PREFIXLEN[version])
    default = spec.get("default_prefixlen", low)
    _check_bounds(version, low, high, default)
    if spec.get("is_default"):
        _check_default(s, version)
    pool = SubnetPool(
        id=new_id(), project_id=owner, name=spec.get("name", ""),
        description=spec.get("description", ""), ip_version=version,
        prefixes=[str(p) for p in prefixes], min_prefixlen=low, max_prefixlen=high,
        default_prefixlen=default, default_quota=spec.get("default_quota"),
        shared=bool(spec.get("shared", False)), is_default=bool(spec.get("is_default", False)),
        tags=[])
    s.add(pool)
    s.flush()
    return pool


def update_subnetpool(s: Session, ctx: RequestContext, subnetpool_id: str,
                      changes: dict[str, Any]) -> SubnetPool:
    pool = get_subnetpool(s, ctx, subnetpool_id, lock=True)
    require_owner(ctx, pool.project_id, "update_subnetpool")
    if "is_default" in changes:
        require(ctx, ADMIN, "update_subnetpool:is_default")
        if changes["is_default"] and not pool.is_default:
            _check_default(s, pool.ip_version, except_id=pool.id)
        pool.is_default = bool(changes["is_default"])
    if "prefixes" in changes:
        version, prefixes = _prefixes(changes["prefixes"])
        if version != pool.ip_version:
            raise SubnetPoolError("PrefixVersionMismatch",
                                  "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
        for old in _nets(pool.prefixes):
            if not any(old.subnet_of(new) for new in prefixes):  # type: ignore[arg-type]
                raise SubnetPoolError("IllegalSubnetPoolPrefixUpdate",
                                      "Illegal update to prefixes: Existing prefixes must be "
                                      "a subset of the new prefixes.")
        pool.prefixes = [str(p) for p in prefixes]
    low = changes.get("min_prefixlen", pool.min_prefixlen)
    high = changes.get("max_prefixlen", pool.max_prefixlen)
    default = changes.get("default_prefixlen", pool.default_prefixlen)
    _check_bounds(pool.ip_version, low, high, default)
    pool.min_prefixlen, pool.max_prefixlen, pool.default_prefixlen = low, high, default
    for key in UPDATABLE:
        if key in changes:
            setattr(pool, key, changes[key])
    pool.revision_number += 1
    return pool


def delete_subnetpool(s: Session, ctx: RequestContext, subnetpool_id: str) -> None:
    """Delete a pool no subnet was allocated from (Neutron's SubnetPoolDeleteError
    otherwise; a subnet allocated concurrently is caught by its foreign key)."""
    pool = get_subnetpool(s, ctx, subnetpool_id, lock=True)
    require_owner(ctx, pool.project_id, "delete_subnetpool")
    if s.scalar(select(Subnet.id).where(Subnet.subnetpool_id == pool.id).limit(1)):
        raise _in_use()
    try:
        s.delete(pool)
        s.flush()
    except IntegrityError:
        raise _in_use() from None


def _in_use() -> SubnetPoolError:
    return SubnetPoolError("SubnetPoolDeleteError", "Unable to delete subnet pool: Subnet "
                           "pool has existing allocations.")


# ---------------------------------------------------------------- allocation


def _nets(texts: list[str]) -> list[Net]:
    return [ipaddress.ip_network(t) for t in texts]


def _free_blocks(s: Session, pool: SubnetPool) -> list[Net]:
    """The pool's prefixes less its subnets, smallest address first."""
    free = _nets(pool.prefixes)
    # A locking read: it sees the latest committed subnets even where the transaction's
    # snapshot is older (MariaDB's repeatable read), and the pool's row lock already held
    # keeps new ones out until this transaction ends.
    used = _nets(list(s.scalars(select(Subnet.cidr).where(Subnet.subnetpool_id == pool.id)
                                .with_for_update())))
    for taken in used:
        rest: list[Net] = []
        for block in free:
            if not block.overlaps(taken):
                rest.append(block)
            elif taken.subnet_of(block):  # type: ignore[arg-type]
                rest.extend(block.address_exclude(taken))  # type: ignore[arg-type]
            # else the block lies inside the taken subnet: none of it is free
        free = rest
    return sorted(free)


def default_subnetpool(s: Session, version: int) -> SubnetPool | None:
    return s.scalar(select(SubnetPool).where(SubnetPool.is_default.is_(True),
                                             SubnetPool.ip_version == version))


def resolve_pool(s: Session, ctx: RequestContext, spec: dict[str, Any]) -> SubnetPool | None:
    """The pool a subnet create names (`subnetpool_id` or `use_default_subnetpool`), locked
    for the allocation; None if it names none."""
    pool_id, use_default = spec.get("subnetpool_id"), spec.get("use_default_subnetpool")
    if pool_id and use_default:
        raise BadL3Request("subnets", "subnetpool_id and use_default_subnetpool cannot both "
                           "be specified")
    if pool_id:
        return get_subnetpool(s, ctx, pool_id, lock=True)
    if not use_default:
        return None
    version = spec["ip_version"]  # required here; a cidr of another version is refused later
    pool = default_subnetpool(s, version)
    if pool is None:
        raise BadL3Request("subnets", f"No default subnetpool found for IPv{version}")
    return get_subnetpool(s, ctx, pool.id, lock=True)


def allocate(s: Session, pool: SubnetPool, spec: dict[str, Any]) -> str:
    """The cidr a new subnet of `pool` gets (its caller holds the pool's row lock)."""
    if spec["ip_version"] != pool.ip_version:
        raise BadL3Request("subnets", f"Cannot allocate IPv{spec['ip_version']} subnet from "
                           f"IPv{pool.ip_version} subnet pool")
    wanted: Net | None = None
    if spec.get("cidr"):
        try:
            wanted = ipaddress.ip_network(spec["cidr"], strict=False)
        except ValueError:
            raise InvalidInput(f"'{spec['cidr']}' is not a valid IP subnet") from None
        prefixlen = wanted.prefixlen
    else:
        prefixlen = spec.get("prefixlen", pool.default_prefixlen)
    if prefixlen > pool.max_prefixlen:
        raise SubnetPoolError("MaxPrefixSubnetAllocationError",
                              f"Unable to allocate subnet with prefix length {prefixlen}, "
                              f"maximum allowed prefix is {pool.max_prefixlen}.")
    if prefixlen < pool.min_prefixlen:
        raise SubnetPoolError("MinPrefixSubnetAllocationError",
                              f"Unable to allocate subnet with prefix length {prefixlen}, "
                              f"minimum allowed prefix is {pool.min_prefixlen}.")
    free = _free_blocks(s, pool)
    if wanted is not None:
        if any(wanted.version == b.version and wanted.subnet_of(b)  # type: ignore[arg-type]
               for b in free):
            return str(wanted)
        raise SubnetAllocationError("Cannot allocate requested subnet from the available set "
                                    "of prefixes")
    for block in free:
        if block.prefixlen <= prefixlen:
            return str(next(block.subnets(new_prefix=prefixlen)))
    raise SubnetAllocationError(f"Insufficient prefix space to allocate subnet size "
                                f"/{prefixlen}")


def check_network_affinity(s: Session, network_id: str, version: int,
                           pool_id: str | None) -> None:
    """Neutron: the subnets of one IP version on a network all come from the same pool (or
    none)."""
    others = s.scalars(select(Subnet.subnetpool_id).where(Subnet.network_id == network_id,
                                                          Subnet.ip_version == version))
    if any(other != pool_id for other in others):
        raise SubnetPoolError("NetworkSubnetPoolAffinityError",
                              "Subnets hosted on the same network must be allocated from the "
                              "same subnet pool.")
