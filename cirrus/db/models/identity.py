"""Identity: domains, projects, users, groups, roles, role assignments and inference rules,
token revocations."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, Timestamp, TimestampMixin


class Domain(TimestampMixin, Base):
    __tablename__ = "domains"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Project(TimestampMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_projects_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    default_project_id: Mapped[str | None] = mapped_column(String(64))
    password_expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    # Keystone's security compliance (cirrus/identity/compliance.py): when the password was
    # set and by whom (a self-service change starts the minimum age), the hashes of earlier
    # ones (unique_last_password_count), and failed logins (lockout).
    password_created_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    password_self_service: Mapped[bool] = mapped_column(Boolean, default=False)
    password_history: Mapped[list] = mapped_column(JSON, default=list)
    failed_auth_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_auth_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class Role(TimestampMixin, Base):
    __tablename__ = "roles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    domain_id: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")


class RoleAssignment(Base):
    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("role_id", "actor_id", "target_id", name="uq_role_assignments_triple"),
        Index("ix_role_assignments_actor_target", "actor_id", "target_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    actor_id: Mapped[str] = mapped_column(String(64))  # a user or group id
    target_id: Mapped[str] = mapped_column(String(64))  # a project or domain id, or "system"
    target_type: Mapped[str] = mapped_column(String(16), default="project")  # project|domain|system
    actor_type: Mapped[str] = mapped_column(String(16), default="user",
                                            server_default="user")  # user | group


class InheritedRoleAssignment(Base):
    """OS-INHERIT: a role a user or group holds on every project below a domain or project
    (not on the domain or project itself)."""

    __tablename__ = "inherited_role_assignments"
    __table_args__ = (
        UniqueConstraint("role_id", "actor_type", "actor_id", "target_type", "target_id",
                         name="uq_inherited_role_assignments"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    actor_type: Mapped[str] = mapped_column(String(16))  # user | group
    actor_id: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(16))  # domain | project
    target_id: Mapped[str] = mapped_column(String(64))


class Group(TimestampMixin, Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)  # Keystone keeps other attributes


class GroupMembership(Base):
    __tablename__ = "group_memberships"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


class ImpliedRole(Base):
    """An inference rule: whoever holds the prior role holds the implied one too."""

    __tablename__ = "implied_roles"
    prior_role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"),
                                               primary_key=True)
    implied_role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"),
                                                 primary_key=True)


class TokenRevocation(Base):
    """A revoked token (by audit id) or all tokens of a user/project issued before a time."""

    __tablename__ = "token_revocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audit_id: Mapped[str | None] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64))
    issued_before: Mapped[dt.datetime] = mapped_column(Timestamp)
    expires_at: Mapped[dt.datetime] = mapped_column(Timestamp)  # safe to purge after this
