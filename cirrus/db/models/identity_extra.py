"""Identity: credentials (and EC2 ones), OAuth1 consumers, policies, domain configuration.

Secrets are never stored in clear: a credential's blob and a sensitive domain-config option
are sealed with the identity secrets key (cirrus/identity/secrets.py, a file outside the
database); an OAuth1 consumer's secret is kept as a salted hash only.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cirrus.db.models.base import Base, TimestampMixin


class Credential(TimestampMixin, Base):
    __tablename__ = "credentials"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(255))
    sealed_blob: Mapped[str] = mapped_column(Text)  # Fernet token: the blob never in clear
    key_hash: Mapped[str] = mapped_column(String(64))  # which key sealed it
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class OAuthConsumer(TimestampMixin, Base):
    __tablename__ = "oauth_consumers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(String(255))
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class Policy(TimestampMixin, Base):
    __tablename__ = "policies"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    blob: Mapped[str] = mapped_column(Text)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class DomainConfigOption(Base):
    """One option of a domain's configuration (Keystone's whitelisted/sensitive tables in one:
    a sensitive option's value is a sealed token)."""

    __tablename__ = "domain_config_options"
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"),
                                           primary_key=True)
    group_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    option_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
