"""Domain-specific configuration (Keystone's /v3/domains/{id}/config): the groups and options
Keystone accepts (`identity`, `ldap`), stored and served back but NOT acted on -- Cirrus has
no LDAP identity backend; every domain's users live in its own database. The one sensitive
option (`ldap.password`) is sealed with the identity secrets key and never shown."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cirrus.db.models import DomainConfigOption
from cirrus.errors import Forbidden, NotFound
from cirrus.identity import secrets
from cirrus.identity.service.domains import get_domain

# Keystone's defaults for the whitelisted options (keystone.conf [identity], [ldap]).
DEFAULTS: dict[str, dict[str, object]] = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {
        "url": "ldap://localhost", "user": None, "suffix": "cn=example,cn=com",
        "query_scope": "one", "page_size": 0, "alias_dereferencing": "default",
        "debug_level": None, "chase_referrals": None, "user_tree_dn": None,
        "user_filter": None, "user_objectclass": "inetOrgPerson", "user_id_attribute": "cn",
        "user_name_attribute": "sn", "user_mail_attribute": "mail",
        "user_description_attribute": "description", "user_pass_attribute": "userPassword",
        "user_enabled_attribute": "enabled", "user_enabled_invert": False,
        "user_enabled_mask": 0, "user_enabled_default": "True",
        "user_attribute_ignore": ["default_project_id"],
        "user_default_project_id_attribute": None, "user_enabled_emulation": False,
        "user_enabled_emulation_dn": None, "user_enabled_emulation_use_group_config": False,
        "user_additional_attribute_mapping": [], "group_tree_dn": None, "group_filter": None,
        "group_objectclass": "groupOfNames", "group_id_attribute": "cn",
        "group_name_attribute": "ou", "group_members_are_ids": False,
        "group_member_attribute": "member", "group_desc_attribute": "description",
        "group_attribute_ignore": [], "group_additional_attribute_mapping": [],
        "tls_cacertfile": None, "tls_cacertdir": None, "use_tls": False,
        "tls_req_cert": "demand", "use_pool": True, "pool_size": 10, "pool_retry_max": 3,
        "pool_retry_delay": 0.1, "pool_connection_timeout": -1,
        "pool_connection_lifetime": 600, "use_auth_pool": True, "auth_pool_size": 100,
        "auth_pool_connection_lifetime": 60,
    },
}
SENSITIVE = {"identity": frozenset(), "ldap": frozenset({"password"})}


def _invalid(reason: str) -> Forbidden:
    # Keystone's InvalidDomainConfig is a 403.
    return Forbidden(f"Invalid domain specific configuration: {reason}.")


def check_option(group: str, option: str | None = None) -> None:
    if group not in DEFAULTS:
        raise _invalid(f"Group {group} is not supported for domain specific configurations")
    if option is not None and option not in DEFAULTS[group] and option not in SENSITIVE[group]:
        raise _invalid(f"Option {option} in group {group} is not supported for domain "
                       "specific configurations")


def check_config(config: dict) -> None:
    for group, options in config.items():
        check_option(group)
        for option in options:
            check_option(group, option)


def default_config(group: str | None = None, option: str | None = None) -> dict:
    if group is None:
        return {g: dict(opts) for g, opts in DEFAULTS.items()}
    if group not in DEFAULTS:
        raise NotFound(f"Could not find Domain Config for group {group}.")
    if option is None:
        return {group: dict(DEFAULTS[group])}
    if option not in DEFAULTS[group]:
        raise NotFound(f"Could not find Domain Config option {option} in group {group}.")
    return {option: DEFAULTS[group][option]}


def _rows(s: Session, domain_id: str) -> list[DomainConfigOption]:
    return list(s.scalars(select(DomainConfigOption).where(
        DomainConfigOption.domain_id == domain_id).order_by(
        DomainConfigOption.group_name, DomainConfigOption.option_name)))


def get_config(s: Session, domain_id: str, group: str | None = None,
               option: str | None = None) -> dict:
    """The stored configuration (sensitive options left out), a group of it, or an option
    ({option: value}); 404 when what is asked for is not there."""
    get_domain(s, domain_id)
    if group is not None:
        check_option(group, option)
    config: dict[str, dict] = {}
    for row in _rows(s, domain_id):
        if not row.sensitive:
            config.setdefault(row.group_name, {})[row.option_name] = row.value
    if not config:
        raise NotFound(f"Could not find Domain Config for domain {domain_id}.")
    if group is None:
        return config
    if group not in config:
        raise NotFound(f"Could not find Domain Config for group {group} of domain "
                       f"{domain_id}.")
    if option is None:
        return {group: config[group]}
    if option not in config[group]:
        raise NotFound(f"Could not find Domain Config option {option} in group {group} of "
                       f"domain {domain_id}.")
    return {option: config[group][option]}


def _store(s: Session, settings: secrets.KeySettings, domain_id: str, config: dict) -> None:
    for group, options in config.items():
        for option, value in options.items():
            sensitive = option in SENSITIVE[group]
            stored = secrets.seal(settings, str(value)) if sensitive else value
            row = s.get(DomainConfigOption, (domain_id, group, option))
            if row is None:
                s.add(DomainConfigOption(domain_id=domain_id, group_name=group,
                                         option_name=option, value=stored,
                                         sensitive=sensitive))
            else:
                row.value, row.sensitive = stored, sensitive
    s.flush()


def replace_config(s: Session, settings: secrets.KeySettings, domain_id: str,
                   config: dict) -> tuple[dict, bool]:
    """PUT: the whole configuration replaced; (it, whether there was one before)."""
    get_domain(s, domain_id)
    check_config(config)
    existed = bool(_rows(s, domain_id))
    s.execute(delete(DomainConfigOption).where(DomainConfigOption.domain_id == domain_id))
    _store(s, settings, domain_id, config)
    return get_config(s, domain_id), existed


def update_config(s: Session, settings: secrets.KeySettings, domain_id: str, config: dict,
                  group: str | None = None, option: str | None = None) -> dict:
    """PATCH: options merged into what is stored (the group, or the option, must be there
    already when the URL names one); the whole configuration back."""
    get_domain(s, domain_id)
    if group is not None and option is not None:
        config = {group: config}
    check_config(config)
    stored = {(r.group_name, r.option_name) for r in _rows(s, domain_id)}
    if not stored:
        raise NotFound(f"Could not find Domain Config for domain {domain_id}.")
    if group is not None and not any(g == group for g, _ in stored):
        raise NotFound(f"Could not find Domain Config for group {group} of domain "
                       f"{domain_id}.")
    if option is not None and (group, option) not in stored:
        raise NotFound(f"Could not find Domain Config option {option} in group {group} of "
                       f"domain {domain_id}.")
    _store(s, settings, domain_id, config)
    return get_config(s, domain_id)


def delete_config(s: Session, domain_id: str, group: str | None = None,
                  option: str | None = None) -> None:
    get_domain(s, domain_id)
    query = delete(DomainConfigOption).where(DomainConfigOption.domain_id == domain_id)
    if group is not None:
        check_option(group, option)
        query = query.where(DomainConfigOption.group_name == group)
    if option is not None:
        query = query.where(DomainConfigOption.option_name == option)
    if s.execute(query).rowcount == 0:  # type: ignore[attr-defined]
        what = (f"option {option} in group {group}" if option else
                f"group {group}" if group else "domain")
        raise NotFound(f"Could not find Domain Config for {what} of domain {domain_id}.")
