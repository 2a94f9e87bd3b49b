"""Network segments (issue 14, l2): which (type, physical network, id) each network holds.

The primary key is what makes a VLAN id on a physical network, a flat physical network or
a VXLAN VNI belong to one network at most, whatever the number of API workers allocating
at once. `physical_network` is "" for vxlan and `segmentation_id` 0 for flat, so the key
has no NULL in it (a NULL never collides in a unique key).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, utcnow


class SegmentAllocation(Base):
    __tablename__ = "segment_allocations"
    network_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    physical_network: Mapped[str] = mapped_column(String(64), primary_key=True)
    segmentation_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
