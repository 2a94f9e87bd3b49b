"""The `cirrus` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from cirrus.config import load_settings
from cirrus.observe.logging import setup_logging

log = logging.getLogger("cirrus")


def _serve_http(cloud, host: str, port: int, on_ready=None) -> None:  # noqa: ANN001
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # noqa: ANN001
            await super().startup(sockets=sockets)
            if on_ready is not None and not self.should_exit:
                on_ready()  # only now does the port accept connections

    from cirrus.api.app import create_app

    config = uvicorn.Config(
        create_app(cloud), host=host, port=port, log_config=None, access_log=False,
        http="httptools", loop="uvloop", lifespan="off", timeout_keep_alive=30,
    )
    server = _Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down, with the handlers
    # it found installed; installing no-op ones lets Cirrus stop its roles and exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()  # returns after SIGINT/SIGTERM


def cmd_all_in_one(args: argparse.Namespace) -> int:
    from cirrus.runtime import Cloud, admin_password_for, fake_host_names, write_clouds_yaml

    settings = load_settings(
        args.config, data_dir=Path(args.data_dir) if args.data_dir else None,
        api_host=args.host, api_port=args.port,
    )
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir = data_dir
    setup_logging(settings.log_level, settings.log_file or str(data_dir / "cirrus.log"),
                  service="cirrus-all-in-one")
    cloud = Cloud(settings)
    cloud.upgrade_schema()
    cloud.recover_after_restart()
    clouds_yaml = data_dir / "clouds.yaml"
    password = admin_password_for(settings, clouds_yaml)
    cloud.bootstrap(password)
    write_clouds_yaml(clouds_yaml, f"{settings.effective_public_url}/identity/v3",
                      settings.admin_user, password, settings.admin_project, settings.region)
    cloud.start_roles(["scheduler", "conductor", "agent"], agent_hosts=fake_host_names(settings))

    def ready() -> None:
        print(f"Cirrus all-in-one listening on {settings.effective_public_url}", flush=True)
        print(f"clouds.yaml: {clouds_yaml}", flush=True)
        print(f"  export OS_CLIENT_CONFIG_FILE={clouds_yaml} OS_CLOUD=cirrus", flush=True)

    try:
        _serve_http(cloud, settings.api_host, settings.api_port, on_ready=ready)
    finally:
        cloud.stop()
        print("Cirrus stopped.", flush=True)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cirrus.db import migrate
    from cirrus.db.engine import Database

    settings = load_settings(args.config)
    db = Database(settings.effective_database_url)
    migrate.upgrade(db.engine)
    print(f"schema at revision {migrate.current_revision(db.engine)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cirrus", description=__doc__)
    parser.add_argument("--config", help="TOML config file (default: $CIRRUS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    aio = sub.add_parser("all-in-one", help="run every role in one process on SQLite")
    aio.add_argument("--host", default=None, help="API listen address (default 127.0.0.1)")
    aio.add_argument("--port", type=int, default=None, help="API port (default 8774)")
    aio.add_argument("--data-dir", default=None, help="where the database, images and clouds.yaml live")
    aio.set_defaults(func=cmd_all_in_one)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations")
    up.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
