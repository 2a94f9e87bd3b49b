"""Users, projects, domains, roles and role assignments: queries and writes.

Every function takes an open session and returns plain model objects. Writes that take
rights away (disable, delete, unassign, password change) return the token revocations the
caller must apply once the transaction has committed: `[(user_id, project_id or None)]`,
None meaning every token of that user.
"""

from __future__ import annotations

from cirrus.identity.service.assignments import (
    Assignment,
    check_grant,
    grant_role,
    list_assignments,
    revoke_role,
    roles_of_user_on,
)
from cirrus.identity.service.auth import (
    authenticate,
    authenticate_password,
    build_claims,
    record_login,
    resolve_scope,
    user_of_token,
)
from cirrus.identity.service.bootstrap import (
    bootstrap,
    ensure_assignment,
    ensure_default_domain,
    ensure_project,
    ensure_role,
    ensure_user,
    reset_password,
)
from cirrus.identity.service.common import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_POLICY,
    DEFAULT_ROLES,
    SYSTEM_ID,
    FailedLogin,
    Revocation,
    extra_attributes,
    new_id,
)
from cirrus.identity.service.domains import (
    create_domain,
    delete_domain,
    domains_of_user,
    get_domain,
    list_domains,
    update_domain,
)
from cirrus.identity.service.groups import (
    add_user_to_group,
    check_user_in_group,
    create_group,
    delete_group,
    get_group,
    groups_of_user,
    list_group_users,
    list_groups,
    remove_user_from_group,
    update_group,
)
from cirrus.identity.service.implied import (
    all_inferences,
    create_inference,
    delete_inference,
    get_inference,
    implied_by,
)
from cirrus.identity.service.projects import (
    create_project,
    delete_project,
    get_project,
    list_projects,
    projects_of_user,
    update_project,
)
from cirrus.identity.service.roles import (
    create_role,
    delete_role,
    get_role,
    list_roles,
    project_role_names,
    update_role,
)
from cirrus.identity.service.users import (
    change_password,
    create_user,
    delete_user,
    get_user,
    list_users,
    update_user,
)

__all__ = [
    "Assignment", "DEFAULT_DOMAIN_ID", "DEFAULT_POLICY", "DEFAULT_ROLES", "FailedLogin",
    "Revocation", "authenticate", "authenticate_password", "bootstrap", "build_claims",
    "change_password", "check_grant", "create_domain", "create_project", "create_role",
    "create_user", "delete_domain", "delete_project", "delete_role", "delete_user",
    "domains_of_user", "ensure_assignment", "ensure_default_domain", "ensure_project",
    "ensure_role", "ensure_user", "extra_attributes", "get_domain", "get_project", "get_role",
    "get_user", "grant_role", "list_assignments", "list_domains", "list_projects",
    "list_roles", "list_users", "new_id", "project_role_names", "projects_of_user",
    "record_login", "reset_password", "resolve_scope", "revoke_role", "roles_of_user_on",
    "update_domain", "update_project", "update_role", "update_user", "user_of_token",
    "SYSTEM_ID", "add_user_to_group", "check_user_in_group", "create_group", "delete_group",
    "get_group", "groups_of_user", "list_group_users", "list_groups", "remove_user_from_group",
    "update_group", "all_inferences", "create_inference", "delete_inference", "get_inference",
    "implied_by",
]
