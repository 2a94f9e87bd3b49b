"""The `cirrus` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cirrus import files, shutdown
from cirrus.config import Settings, load_settings
from cirrus.observe import stackdump
from cirrus.observe.logging import setup_logging

log = logging.getLogger("cirrus")


def _serve_http(cloud, host: str, port: int, stopper, on_ready=None) -> None:
    """Serve the API until SIGTERM/SIGINT; the stop is bounded (cirrus.serving, shutdown)."""
    from cirrus.serving import serve_http, tls_context

    s = cloud.settings
    context = tls_context(s.tls_cert_file, s.tls_key_file) if s.tls_cert_file else None
    serve_http(cloud, host, port, stopper, on_ready=on_ready, ssl_context=context)


def _wait_for_stop(stopper) -> None:
    """Block the main thread until SIGINT or SIGTERM (roles without HTTP)."""
    shutdown.install_signals(stopper)
    while not stopper.requested.wait(1.0):  # a timeout keeps the main thread answering signals
        pass


def _check_tls(settings: Settings) -> str | None:
    """What is wrong with the TLS settings, or None."""
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        return "tls_cert_file and tls_key_file go together: set both (HTTPS) or neither"
    for name in ("tls_cert_file", "tls_key_file"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            return f"{name} {path} is not a readable file"
    if settings.tls_cert_file:
        import ssl

        from cirrus.serving import tls_context

        try:
            tls_context(settings.tls_cert_file, settings.tls_key_file)
        except (ssl.SSLError, OSError) as exc:
            return f"cannot load the TLS certificate and key: {exc}"
    return None


def _fail(command: str, message: str, code: int = 1) -> int:
    if logging.getLogger().handlers:  # the JSON log too, once it is set up
        log.error("%s: %s", command, message)
    print(f"cirrus {command}: {message}", file=sys.stderr, flush=True)
    return code


def _apply_file_modes(settings: Settings) -> str | None:
    """The umask and modes for `file_group` (main() already made the umask private);
    what is wrong with the setting, or None."""
    try:
        files.apply(settings)
    except files.FileGroupError as exc:
        return str(exc)
    return None


def _ensure_sqlite_dir(settings: Settings) -> None:
    """SQLite creates the file, not the directory it lives in."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        files.make_dirs(Path(url.database).parent)


def _schema_problem(settings: Settings) -> str | None:
    """Why this database cannot be served (out of date or unreachable), or None."""
    from sqlalchemy.exc import OperationalError

    from cirrus.db import migrate
    from cirrus.db.engine import Database
    from cirrus.observe.logging import redact

    db = Database(settings.effective_database_url)
    try:
        migrate.check_schema(db.engine)
    except migrate.SchemaOutOfDate as exc:
        return exc.message
    except OperationalError as exc:
        return (f"cannot reach the database {redact(db.url)}: {exc.orig}. Check "
                "database_url (CIRRUS_DATABASE_URL) and that the server is up.")
    finally:
        db.dispose()
    return None


# ---------------------------------------------------------------- all-in-one


def cmd_all_in_one(args: argparse.Namespace) -> int:
    from cirrus.runtime import Cloud, admin_password_for, all_in_one_host_names, write_clouds_yaml

    settings = load_settings(
        args.config, data_dir=Path(args.data_dir) if args.data_dir else None,
        api_host=args.host, api_port=args.port, virt_driver=args.virt_driver,
        tls_self_signed=True if args.tls else None,
    )
    if settings.virt_driver == "libvirt" and settings.network_dataplane == "noop":
        # Real guests need real taps; noop makes none, so libvirt could not start a NIC.
        settings.network_dataplane = "linuxbridge"
    data_dir = Path(settings.data_dir).resolve()
    settings.data_dir = data_dir
    problem = _apply_file_modes(settings)
    if problem:
        return _fail("all-in-one", problem, 2)
    files.make_dirs(data_dir)
    log_file = settings.log_file or str(data_dir / "cirrus.log")
    files.touch_private(log_file)
    setup_logging(settings.log_level, log_file, service="cirrus-all-in-one")
    self_signed = settings.tls_self_signed and not settings.tls_cert_file
    if self_signed:
        from cirrus.serving import self_signed_pair

        settings.tls_cert_file, settings.tls_key_file = self_signed_pair(
            data_dir / "tls", [settings.api_host, "localhost", "127.0.0.1", "::1"])
    files.warn_loose(settings)
    problem = _check_tls(settings)
    if problem:
        return _fail("all-in-one", problem, 2)
    stackdump.install()
    stopper = shutdown.Stopper(settings.shutdown_timeout)
    shutdown.install_signals(stopper)  # a SIGTERM while starting stops too, as bounded
    cloud = Cloud(settings)
    cloud.upgrade_schema()
    cloud.recover_after_restart()
    clouds_yaml = data_dir / "clouds.yaml"
    password = admin_password_for(settings, clouds_yaml)
    cloud.bootstrap(password)
    write_clouds_yaml(clouds_yaml, f"{settings.effective_public_url}/identity/v3",
                      settings.admin_user, password, settings.admin_project, settings.region,
                      cacert=settings.tls_cert_file if self_signed else None)
    cloud.start_roles(["scheduler", "conductor", "agent"],
                      agent_hosts=all_in_one_host_names(settings))

    def ready() -> None:
        print(f"Cirrus all-in-one listening on {settings.effective_public_url}", flush=True)
        print(f"clouds.yaml: {clouds_yaml}", flush=True)
        print(f"  export OS_CLIENT_CONFIG_FILE={clouds_yaml} OS_CLOUD=cirrus", flush=True)

    try:
        if not stopper.requested.is_set():
            _serve_http(cloud, settings.api_host, settings.api_port, stopper, on_ready=ready)
    finally:
        cloud.stop(stopper.at(shutdown.CLOSE) if stopper.requested.is_set() else None)
        print("Cirrus stopped.", flush=True)
    return stopper.finish(0)


# ---------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from cirrus.runtime import ROLES, Cloud, ConfigurationError, check_bus_for_roles, parse_roles

    try:
        roles = parse_roles(args.role)
    except ConfigurationError as exc:
        return _fail("serve", str(exc), 2)
    settings = load_settings(args.config, api_host=args.host, api_port=args.port,
                             host_name=args.host_name)
    problem = _apply_file_modes(settings)
    if problem:
        return _fail("serve", problem, 2)
    if settings.log_file:
        files.touch_private(settings.log_file)
    setup_logging(settings.log_level, settings.log_file, service="cirrus-" + "+".join(roles))
    files.warn_loose(settings)
    problem = _check_tls(settings) if "api" in roles else None
    if settings.tls_self_signed and not settings.tls_cert_file:
        problem = ("tls_self_signed is for `cirrus all-in-one`; `cirrus serve` needs "
                   "tls_cert_file and tls_key_file (see docs/deployment.md, HTTPS)")
    if problem:
        return _fail("serve", problem, 2)
    try:
        check_bus_for_roles(settings, roles)
    except ConfigurationError as exc:
        return _fail("serve", str(exc), 2)
    if roles != ["agent"]:  # an agent talks to the bus only, never to the database
        problem = _schema_problem(settings)
        if problem:
            return _fail("serve", problem)
    if "api" in roles:  # an API process signs and checks tokens with the key directory's keys
        problem = _token_key_problem(settings)
        if problem:
            return _fail("serve", problem)
    stackdump.install()
    try:
        cloud = Cloud(settings)
    except ConfigurationError as exc:
        return _fail("serve", str(exc), 2)
    single_process = set(roles) == set(ROLES) and not settings.broker_urls
    stopper = shutdown.Stopper(settings.shutdown_timeout)
    shutdown.install_signals(stopper)  # a SIGTERM while starting stops too, as bounded
    try:
        if single_process:
            cloud.recover_after_restart()  # the only API process: nobody else is uploading
        agent_hosts = [settings.effective_host_name] if "agent" in roles else []
        cloud.start_roles(roles, agent_hosts=agent_hosts)
        log.info("cirrus serve: roles %s running as host %s", ",".join(roles),
                 settings.effective_host_name)
        if stopper.requested.is_set():
            pass  # stopped while starting
        elif "api" in roles:
            scheme = "https" if settings.tls_cert_file else "http"
            url = f"{scheme}://{settings.api_host}:{settings.api_port}"

            def ready() -> None:
                print(f"Cirrus {','.join(roles)} listening on {url}", flush=True)

            _serve_http(cloud, settings.api_host, settings.api_port, stopper, on_ready=ready)
        else:
            print(f"Cirrus {','.join(roles)} running as host {settings.effective_host_name}",
                  flush=True)
            _wait_for_stop(stopper)
    finally:
        cloud.stop(stopper.at(shutdown.CLOSE) if stopper.requested.is_set() else None)
        print("Cirrus stopped.", flush=True)
    return stopper.finish(0)


# ---------------------------------------------------------------- db, bootstrap


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cirrus.db import migrate
    from cirrus.db.engine import Database

    settings = load_settings(args.config)
    problem = _apply_file_modes(settings)
    if problem:
        return _fail("db upgrade", problem, 2)
    _ensure_sqlite_dir(settings)
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
    problem = _apply_file_modes(settings)
    if problem:
        return _fail("bootstrap", problem, 2)
    password = args.admin_password or settings.admin_password
    if not password:
        return _fail("bootstrap", "give the admin password: --admin-password P, or "
                     "CIRRUS_ADMIN_PASSWORD / admin_password in the config file", 2)
    api_url = (args.api_url or settings.effective_public_url).rstrip("/")
    problem = _schema_problem(settings)
    if problem:
        return _fail("bootstrap", problem)
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


# ---------------------------------------------------------------- token-keys


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
        return _fail(command, str(exc))
    if not keys.keys:
        return _fail(command, f"no token signing keys in {directory}: run `cirrus token-keys "
                              "setup`")
    for index in sorted(keys.keys, reverse=True):
        role = ("staged" if index == STAGED else
                "primary" if index == keys.primary_index else "secondary")
        print(f"  {index}: {role} (id {key_id(keys.keys[index])})")
    return 0


def _token_key_problem(settings: Settings) -> str | None:
    """Why this API process could not sign tokens, or None."""
    from cirrus.identity.keys import KeyRepository

    directory = settings.effective_token_key_dir
    if KeyRepository(directory).load().primary is None:
        return (f"no token signing key in {directory} (token_key_dir): run `cirrus "
                "token-keys setup` (or `cirrus bootstrap`) there, and give every API process "
                "of the deployment the same directory (docs/deployment.md)")
    return None


# ---------------------------------------------------------------- log-level


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


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cirrus", description=__doc__)
    parser.add_argument("--config", help="TOML config file (default: $CIRRUS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    aio = sub.add_parser("all-in-one", help="run every role in one process on SQLite")
    aio.add_argument("--host", default=None, help="API listen address (default 127.0.0.1)")
    aio.add_argument("--port", type=int, default=None, help="API port (default 8774)")
    aio.add_argument("--data-dir", default=None, help="where the database, images and clouds.yaml live")
    aio.add_argument("--tls", action="store_true",
                     help="serve HTTPS with a self-signed certificate made on first start "
                          "(<data-dir>/tls; clouds.yaml trusts it), unless tls_cert_file "
                          "is set (tls_self_signed)")
    aio.add_argument("--virt-driver", default=None, choices=("fake", "libvirt"),
                     help="fake: simulated hosts (default, virt_driver); libvirt: real QEMU "
                          "guests on this machine, one host named after it, linuxbridge "
                          "networking")
    aio.set_defaults(func=cmd_all_in_one)

    serve = sub.add_parser(
        "serve", help="run some roles in this process (production: a database and RabbitMQ)")
    serve.add_argument("--role", required=True,
                       help="comma-separated: api, conductor, scheduler, agent")
    serve.add_argument("--host", default=None, help="api: listen address (default api_host)")
    serve.add_argument("--port", type=int, default=None, help="api: port (default api_port)")
    serve.add_argument("--host-name", default=None,
                       help="this host's name in os-services; an agent's hypervisor name "
                            "(default host_name, else the machine's host name)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.set_defaults(func=cmd_db_upgrade)

    boot = sub.add_parser("bootstrap",
                          help="create the admin user and project and write a clouds.yaml")
    boot.add_argument("--admin-password", default=None,
                      help="the admin's password (default: admin_password / "
                           "CIRRUS_ADMIN_PASSWORD); an existing admin's is reset to it")
    boot.add_argument("--api-url", default=None,
                      help="the URL clients reach the API at, e.g. the load balancer "
                           "(default: public_url)")
    boot.add_argument("--clouds-yaml", default="clouds.yaml",
                      help="where to write the clouds.yaml (default ./clouds.yaml)")
    boot.set_defaults(func=cmd_bootstrap)

    tk = sub.add_parser("token-keys",
                        help="the token signing keys (token_key_dir): create, rotate, list")
    tk_sub = tk.add_subparsers(dest="token_keys_command", required=True)
    tk_sub.add_parser("setup", help="create the first keys if the directory has none")
    tk_sub.add_parser("rotate", help="promote the staged key to primary, stage a new one, "
                                     "remove keys whose tokens have expired")
    tk_sub.add_parser("list", help="show the keys and their roles")
    tk.set_defaults(func=cmd_token_keys)

    lvl = sub.add_parser("log-level",
                         help="show or change the log level of every running Cirrus process")
    lvl.add_argument("level", nargs="?", default=None,
                     help="DEBUG, INFO, WARNING, ERROR, CRITICAL (NOTSET with --logger: "
                          "inherit); omitted: show the current levels")
    lvl.add_argument("--logger", default=None, help="one logger, e.g. cirrus.compute")
    lvl.add_argument("--url", default=None,
                     help="Cirrus API base URL (default: from the cloud's auth_url)")
    lvl.add_argument("--os-cloud", default=None,
                     help="cloud in clouds.yaml (default: $OS_CLOUD, else cirrus)")
    lvl.add_argument("--clouds-yaml", default=None,
                     help="clouds.yaml path (default: $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, "
                          "~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)")
    lvl.set_defaults(func=cmd_log_level)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before anything is written: files only this user reads (file_group relaxes it to the
    # group once the settings are read). docs/security.md, Files and permissions.
    os.umask(files.PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
