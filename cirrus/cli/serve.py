"""`cirrus all-in-one` and `cirrus serve`: the commands that run Cirrus's roles until stopped."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cirrus import files, shutdown
from cirrus.cli.checks import (
    apply_file_modes,
    check_tls,
    fail,
    schema_problem,
    token_key_problem,
)
from cirrus.config import load_settings
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
    if settings.virt_driver == "libvirt":
        settings.dhcp_agent = True  # dhcp: the one host serves its networks' DHCP
        settings.l3_agent = True  # l3: and runs their routers
    data_dir = Path(settings.data_dir).resolve()
    settings.data_dir = data_dir
    problem = apply_file_modes(settings)
    if problem:
        return fail("all-in-one", problem, 2)
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
    problem = check_tls(settings)
    if problem:
        return fail("all-in-one", problem, 2)
    stackdump.install()
    stopper = shutdown.Stopper(settings.shutdown_timeout)
    shutdown.install_signals(stopper)  # a SIGTERM while starting stops too, as bounded
    cloud = Cloud(settings)
    cloud.upgrade_schema()
    cloud.recover_after_restart()
    clouds_yaml = data_dir / "clouds.yaml"
    password = admin_password_for(settings, clouds_yaml)
    cloud.bootstrap(password)
    if settings.virt_driver == "libvirt":  # l3: a default external network (issue 14, 5)
        from cirrus.network.external import ensure_default_external_network

        cloud.db.run(lambda s: ensure_default_external_network(s, settings))
    write_clouds_yaml(clouds_yaml, f"{settings.effective_public_url}/identity/v3",
                      settings.admin_user, password, settings.admin_project, settings.region,
                      cacert=settings.tls_cert_file if self_signed else None)
    cloud.start_roles(["scheduler", "conductor", "agent", "volume"],
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


def cmd_serve(args: argparse.Namespace) -> int:
    from cirrus.runtime import (
        CORE_ROLES,
        Cloud,
        ConfigurationError,
        check_bus_for_roles,
        parse_roles,
    )

    try:
        roles = parse_roles(args.role)
    except ConfigurationError as exc:
        return fail("serve", str(exc), 2)
    settings = load_settings(args.config, api_host=args.host, api_port=args.port,
                             host_name=args.host_name)
    problem = apply_file_modes(settings)
    if problem:
        return fail("serve", problem, 2)
    if settings.log_file:
        files.touch_private(settings.log_file)
    setup_logging(settings.log_level, settings.log_file, service="cirrus-" + "+".join(roles))
    files.warn_loose(settings)
    problem = check_tls(settings) if "api" in roles else None
    if settings.tls_self_signed and not settings.tls_cert_file:
        problem = ("tls_self_signed is for `cirrus all-in-one`; `cirrus serve` needs "
                   "tls_cert_file and tls_key_file (see docs/deployment.md, HTTPS)")
    if problem:
        return fail("serve", problem, 2)
    try:
        check_bus_for_roles(settings, roles)
    except ConfigurationError as exc:
        return fail("serve", str(exc), 2)
    if roles != ["agent"]:  # an agent talks to the bus only, never to the database
        problem = schema_problem(settings)
        if problem:
            return fail("serve", problem)
    if "api" in roles:  # an API process signs and checks tokens with the key directory's keys
        problem = token_key_problem(settings)
        if problem:
            return fail("serve", problem)
    stackdump.install()
    try:
        cloud = Cloud(settings)
    except ConfigurationError as exc:
        return fail("serve", str(exc), 2)
    single_process = set(roles) >= set(CORE_ROLES) and not settings.broker_urls
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
