"""Build secrets (adminPass, personality files) never in plain text in the database, its WAL,
any file under the data directory or the logs, yet on the config drive the guest reads
(docs/security.md, "Build secrets"; issue 11, point 1)."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from cirrus import build_secrets
from cirrus.agent.service import Agent
from cirrus.compute import instances
from cirrus.config import Settings
from cirrus.db.models import Instance
from cirrus.virt import configdrive
from cirrus.virt.libvirt import spec as specs
from tests.api.servers_helpers import add_flavor, add_image, server_body, wait_for_status
from tests.services import missing

SERVERS = "/compute/v2.1/servers"
PERSONALITY_MV = "2.56"


def forms(secret: bytes) -> list[bytes]:
    """`secret` as it could sit in a file: itself, JSON-escaped, and base64 at each of the
    three alignments it can have inside a longer base64 text (standard and url-safe)."""
    found = [secret, json.dumps(secret.decode()).encode()[1:-1]]
    for skip in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(bytes(skip) + secret)
            first = -(-skip // 3)  # the first 4-character group made of secret bytes only
            last = (skip + len(secret)) // 3  # groups before this one are whole
            found.append(text[4 * first:4 * last])
    return list(dict.fromkeys(found))


def leaks(secret: bytes, blobs: dict[str, bytes]) -> list[str]:
    return [f"{name} holds {form!r}" for name, blob in blobs.items()
            for form in forms(secret) if form in blob]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}




def test_admin_pass_and_files_are_nowhere_in_plain_text_but_on_the_config_drive(
        api, cloud, member, spawned, caplog, tmp_path) -> None:
    caplog.set_level(logging.DEBUG)
    flavor, image = add_flavor(cloud), add_image(cloud)
    password = f"Pw-{secrets.token_hex(12)}"
    content = f"personality-{secrets.token_hex(12)}\n".encode()
    body = server_body(flavor, image, adminPass=password, config_drive=True, personality=[
        {"path": "/etc/cirrus-secret", "contents": base64.b64encode(content).decode()}])
    r = api.post(SERVERS, json=body, headers=member.compute(PERSONALITY_MV))
    assert r.status_code == 202, r.text
    assert r.json()["server"]["adminPass"] == password  # the one place it is given back
    uuid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), uuid, "ACTIVE")

    # The destination: the drive the libvirt driver would write from the spec the agent got.
    spec = spawned[uuid]
    opened = spec.open_build_secrets(cloud.settings)
    drive = configdrive.drive_contents(**specs.config_drive_inputs(spec, {}, opened))
    meta = json.loads(drive["openstack/latest/meta_data.json"])
    assert meta["admin_pass"] == password
    assert meta["files"] == [{"path": "/etc/cirrus-secret",
                              "content_path": "/content/0000"}]
    assert drive["openstack/content/0000"] == content
    r = api.post(f"{SERVERS}/{uuid}/action", json={"os-getConsoleOutput": {}},
                 headers=member.compute())
    assert "admin password set, 1 file(s) injected" in r.json()["output"]  # the fake guest

    # ... and nowhere else: every file of the data directory (cirrus.db, its WAL, the key's
    # directory aside), the spec the bus carried, and every log record.
    with cloud.db.reader() as s:
        assert not set(s.scalar(select(Instance.request_spec).where(Instance.uuid == uuid))) \
            & set(instances.BUILD_SECRETS)  # erased once built, as before
    data_dir = Path(cloud.settings.data_dir)
    blobs = files_under(data_dir)
    assert "cirrus.db" in blobs
    if "cirrus.db-wal" not in blobs:  # the WAL was checkpointed away: its pages are in the db
        assert cloud.settings.effective_database_url.startswith("sqlite")
    blobs["the spawn message's spec"] = json.dumps(spec.to_dict()).encode()
    blobs["the logs"] = (caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records)).encode()
    problems = leaks(password.encode(), blobs) + leaks(content.rstrip(b"\n"), blobs) \
        + leaks(content, blobs)
    assert not problems, problems


def test_the_wal_is_checked_while_it_still_holds_the_build(api, cloud, member, settings) -> None:
    """The WAL file exists on SQLite during the run: the scan above reads it (not vacuous)."""
    if not settings.effective_database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    flavor, image = add_flavor(cloud), add_image(cloud)
    r = api.post(SERVERS, json=server_body(flavor, image, adminPass="x" * 20),
                 headers=member.compute())
    wait_for_status(api, member.compute(), r.json()["server"]["id"], "ACTIVE")
    wal = Path(settings.data_dir) / "cirrus.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    sealed_marker = b"gAAAAA"  # every Fernet token starts so: the sealed form did reach it
    assert sealed_marker in wal.read_bytes() or sealed_marker in (
        Path(settings.data_dir) / "cirrus.db").read_bytes()


def test_the_key_file_is_private_and_made_once(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    path = build_secrets.ensure_key(settings)
    assert path == tmp_path / "data" / "keys" / "build-secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    before = path.read_bytes()
    assert build_secrets.ensure_key(settings) == path and path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["build-secrets.key"]  # no temp left


def test_a_token_opens_only_for_its_instance_and_key(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    sealed = build_secrets.BuildSecrets("hunter2-password", [("/f", b"data")])
    token = build_secrets.seal(settings, "uuid-a", sealed)
    assert build_secrets.open_sealed(settings, "uuid-a", token) == sealed
    assert "hunter2" not in repr(sealed) and "data" not in repr(sealed)
    assert "hunter2" not in token
    with pytest.raises(build_secrets.BuildSecretsError, match="sealed for another instance"):
        build_secrets.open_sealed(settings, "uuid-b", token)  # moved to another instance
    other = Settings(data_dir=tmp_path / "other-host")
    build_secrets.ensure_key(other)
    with pytest.raises(build_secrets.BuildSecretsError, match="do not open with the keys"):
        build_secrets.open_sealed(other, "uuid-a", token)
    with pytest.raises(build_secrets.BuildSecretsError, match="is missing"):
        build_secrets.open_sealed(Settings(data_dir=tmp_path / "no-key"), "uuid-a", token)
    assert not (tmp_path / "no-key").exists()  # an agent never makes a key of its own


def test_rotation_old_tokens_open_while_their_key_is_listed(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    path = build_secrets.ensure_key(settings)
    old_token = build_secrets.seal(settings, "u", build_secrets.BuildSecrets("old-pass"))
    new_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    path.write_text(f"{new_key}\n{path.read_text()}")  # the new key first, the old kept
    new_token = build_secrets.seal(settings, "u", build_secrets.BuildSecrets("new-pass"))
    assert build_secrets.open_sealed(settings, "u", old_token).admin_pass == "old-pass"
    assert build_secrets.open_sealed(settings, "u", new_token).admin_pass == "new-pass"
    path.write_text(new_key + "\n")  # the old one retired
    assert build_secrets.open_sealed(settings, "u", new_token).admin_pass == "new-pass"
    with pytest.raises(build_secrets.BuildSecretsError):
        build_secrets.open_sealed(settings, "u", old_token)
    path.write_text("# nothing but a comment\nnot-a-key\n")
    with pytest.raises(build_secrets.BuildSecretsError, match="line 2: not a Fernet key"):
        build_secrets.open_sealed(settings, "u", new_token)


def test_a_host_without_the_key_fails_the_build_saying_why(api, cloud, member) -> None:
    flavor, image = add_flavor(cloud), add_image(cloud)
    for role in cloud.roles:  # the agents read another key file than the API writes
        if isinstance(role, Agent):
            role.driver.settings = Settings(data_dir=Path(cloud.settings.data_dir) / "elsewhere")
    r = api.post(SERVERS, json=server_body(flavor, image, adminPass="never-seen-pass"),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    server = wait_for_status(api, member.compute(), r.json()["server"]["id"], "ERROR")
    assert build_secrets.UNOPENABLE in server["fault"]["message"]
    assert "elsewhere" not in server["fault"]["message"]  # no path of the host's for users
    with cloud.db.reader() as s:
        spec = s.scalar(select(Instance.request_spec).where(Instance.uuid == server["id"]))
    assert not set(spec) & set(instances.BUILD_SECRETS)  # erased after the failed build too


# ------------------------------------------------------------------ over RabbitMQ (durable)

RABBITMQ_DATA = Path(os.environ.get("CIRRUS_TEST_RABBITMQ_DATA", "/var/lib/rabbitmq/mnesia"))


@pytest.mark.e2e
def test_over_rabbitmq_the_broker_stores_only_the_sealed_form(tmp_path) -> None:
    """A spawn message waits in the agent's durable queue (the agent is down): what RabbitMQ
    writes to disk holds the sealed token, never the password; the agent, back, builds."""
    from tests.dbfixtures import fresh_database
    from tests.deployment import BROKER_URL, Deployment, require_broker, wait_for

    require_broker()
    if not os.access(RABBITMQ_DATA, os.R_OK | os.X_OK):
        missing(f"RabbitMQ's data directory {RABBITMQ_DATA} is not readable here")
    password = f"Pw-{secrets.token_hex(12)}"
    content = f"personality-{secrets.token_hex(12)}".encode()
    with fresh_database("postgresql") as url, Deployment(tmp_path, url, [BROKER_URL]) as d:
        d.start_standard(apis=1, agents=1)
        d.wait_ready()
        client = d.client()
        flavor = client.post("/compute/v2.1/flavors", json={"flavor": {
            "name": "tiny", "vcpus": 1, "ram": 64, "disk": 1}}).json()["flavor"]["id"]
        image = client.post("/image/v2/images", json={
            "name": "img", "disk_format": "raw", "container_format": "bare"}).json()["id"]
        assert client.put(f"/image/v2/images/{image}/file", content=b"\0" * 512, headers={
            "Content-Type": "application/octet-stream"}).status_code == 204
        d.kill("agent-1")  # its durable queue keeps what is sent to it
        body = server_body(flavor, image, adminPass=password, personality=[
            {"path": "/etc/x", "contents": base64.b64encode(content).decode()}])
        r = client.post(SERVERS, json=body, headers={"OpenStack-API-Version": "compute 2.56"})
        assert r.status_code == 202, r.text
        uuid = r.json()["server"]["id"]

        def broker_files() -> dict[str, bytes]:
            return {str(p): p.read_bytes() for p in RABBITMQ_DATA.rglob("*")
                    if p.is_file() and p.stat().st_size < 64 * 1024**2}

        # The message is on the broker's disk (so the scan is not vacuous): its token is.
        wait_for(lambda: _spawning(d, uuid), 30, "the build being sent to the agent")
        token = _sealed_token(d, uuid)
        assert token
        wait_for(lambda: any(token.encode() in b for b in broker_files().values()), 30,
                 "RabbitMQ writing the spawn message to disk")
        problems = leaks(password.encode(), broker_files()) + leaks(content, broker_files())
        assert not problems, problems

        d.restart("agent-1")
        wait_for(lambda: client.get(f"{SERVERS}/{uuid}").json()["server"]["status"] == "ACTIVE",
                 60, "the server becoming ACTIVE")
        r = client.post(f"{SERVERS}/{uuid}/action", json={"os-getConsoleOutput": {}})
        assert "admin password set, 1 file(s) injected" in r.json()["output"]
        blobs = {**files_under(tmp_path), **broker_files()}
        problems = leaks(password.encode(), blobs) + leaks(content, blobs)
        assert not problems, problems


def _row(d, uuid: str, column):
    from sqlalchemy import create_engine

    engine = create_engine(d.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(column).where(Instance.uuid == uuid)).scalar()
    finally:
        engine.dispose()


def _spawning(d, uuid: str) -> bool:
    return _row(d, uuid, Instance.task_state) == "spawning"


def _sealed_token(d, uuid: str) -> str | None:
    """The instance's sealed build secrets, read from its request spec while it waits."""
    return (_row(d, uuid, Instance.request_spec) or {}).get(build_secrets.SEALED)


def test_an_unusable_key_file_is_a_503_that_creates_nothing(api, cloud, member) -> None:
    flavor, image = add_flavor(cloud), add_image(cloud)
    path = build_secrets.ensure_key(cloud.settings)
    path.write_text("not-a-key\n")
    r = api.post(SERVERS, json=server_body(flavor, image), headers=member.compute())
    assert r.status_code == 503, r.text
    (error,) = r.json().values()
    assert "build secrets key" in error["message"]
    assert str(path) not in r.text  # the path is for the operator's log
    with cloud.db.reader() as s:
        assert s.scalars(select(Instance.uuid)).all() == []
