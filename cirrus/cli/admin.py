"""The administration commands: `cirrus db upgrade`, `bootstrap`, `token-keys`, `log-level`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cirrus.cli.checks import apply_file_modes, ensure_sqlite_dir, fail, schema_problem
from cirrus.config import load_settings


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cirrus.db import migrate
    from cirrus.db.engine import Database

    settings = load_settings(args.config)
    problem = apply_file_modes(settings)
    if problem:
        return fail("db upgrade", problem, 2)
    ensure_sqlite_dir(settings)
    db = Database(settings.effective_database_url)
    try:
        migrate.upgrade(db.engine)
        print(f"schema at revision {migrate.current_revision(db.engine)}")
    finally:
        db.dispose()
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from cirrus.bus.local import LocalBus
    from cirrus.runtime import Cloud, write_clouds_yaml

    settings = load_settings(args.config)
    problem = apply_file_modes(settings)
    if problem:
        return fail("bootstrap", problem, 2)
    password = args.admin_password or settings.admin_password
    if not password:
        return fail("bootstrap", "give the admin password: --admin-password P, or "
                     "CIRRUS_ADMIN_PASSWORD / admin_password in the config file", 2)
    api_url = (args.api_url or settings.effective_public_url).rstrip("/")
    problem = schema_problem(settings)
    if problem:
        return fail("bootstrap", problem)
    cloud = Cloud(settings, bus=LocalBus())  # bootstrapping needs the database only
    try:
        changed = cloud.bootstrap(password, reset_password=True)
    finally:
        cloud.stop()
    clouds_yaml = Path(args.clouds_yaml)
    write_clouds_yaml(clouds_yaml, f"{api_url}/identity/v3", settings.admin_user, password,
                      settings.admin_project, settings.region)
    if changed:
        print(f"the password of {settings.admin_user} was changed to the one given")
    print(f"bootstrapped: user {settings.admin_user}, project {settings.admin_project}")
    print(f"clouds.yaml: {clouds_yaml} (cloud cirrus, {api_url}/identity/v3)")
    return 0


def cmd_token_keys(args: argparse.Namespace) -> int:
    """`cirrus token-keys setup|rotate|list`: the token signing key directory (docs/security.md)."""
    from cirrus.identity.keys import STAGED, KeyRepository, KeyRepositoryError, key_id

    settings = load_settings(args.config)
    directory = settings.effective_token_key_dir
    repo = KeyRepository(directory, settings.token_max_active_keys)
    command = f"token-keys {args.token_keys_command}"
    try:
        if args.token_keys_command == "setup":
            made = repo.setup()
            print(f"{'created' if made else 'kept the existing'} token signing keys in {directory}")
        elif args.token_keys_command == "rotate":
            result = repo.rotate(settings.token_ttl)
            print(f"rotated the token signing keys in {directory}: key {result.primary} is "
                  f"primary, a new key 0 is staged; removed: "
                  f"{', '.join(map(str, result.removed)) or 'none'}")
            if result.kept_for_live_tokens:
                print(f"kept {', '.join(map(str, result.kept_for_live_tokens))} beyond "
                      f"token_max_active_keys ({repo.max_active_keys}): tokens they signed may "
                      f"not have expired yet (token_ttl {settings.token_ttl} s)")
            print("copy the directory to every other API host now (see docs/deployment.md)")
        keys = repo.load()
    except (KeyRepositoryError, OSError) as exc:
        return fail(command, str(exc))
    if not keys.keys:
        return fail(command, f"no token signing keys in {directory}: run `cirrus token-keys "
                              "setup`")
    for index in sorted(keys.keys, reverse=True):
        role = ("staged" if index == STAGED else
                "primary" if index == keys.primary_index else "secondary")
        print(f"  {index}: {role} (id {key_id(keys.keys[index])})")
    return 0


def cmd_log_level(args: argparse.Namespace) -> int:
    from cirrus.observe.adminclient import AdminClientError, admin_session

    try:
        session = admin_session(args.os_cloud, url=args.url, clouds_yaml=args.clouds_yaml)
        if args.level is None:
            result = session.request("GET", "/cirrus/v1/log-level")
        else:
            body: dict = {"level": args.level}
            if args.logger:
                body["logger"] = args.logger
            result = session.request("PUT", "/cirrus/v1/log-level", body)
    except AdminClientError as exc:
        print(f"cirrus log-level: {exc}", file=sys.stderr)
        return 1
    print(f"root: {result['level']}")
    for name, level in result.get("loggers", {}).items():
        print(f"{name}: {level}")
    if result.get("propagated") is False:
        print("warning: the other Cirrus processes could not be told (bus unavailable); "
              "only the API process that answered changed", file=sys.stderr)
    return 0
