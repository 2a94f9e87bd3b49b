"""The `cirrus` command."""

from __future__ import annotations

import argparse
import os

from cirrus import files
from cirrus.cli.admin import cmd_bootstrap, cmd_db_upgrade, cmd_log_level, cmd_token_keys
from cirrus.cli.serve import cmd_all_in_one, cmd_serve


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
                          "networking and DHCP (dnsmasq)")
    aio.set_defaults(func=cmd_all_in_one)

    serve = sub.add_parser(
        "serve", help="run some roles in this process (production: a database and RabbitMQ)")
    serve.add_argument("--role", required=True,
                       help="comma-separated: api, conductor, scheduler, agent, volume")
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
