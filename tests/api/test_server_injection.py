"""adminPass and personality (injected files): checked against the project's limits, handed
sealed to the host that builds the server (for its config drive), then erased from the
database (tests/security/test_secrets.py: never there in plain text)."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from cirrus import build_secrets
from cirrus.compute import instances
from cirrus.db.models import Instance
from cirrus.virt.driver import InstanceSpec
from tests.api.servers_helpers import server_body, wait_for_status

SERVERS = "/compute/v2.1/servers"
PERSONALITY_MV = "2.56"  # the last microversion with personality




def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def opened(cloud, spec: InstanceSpec) -> build_secrets.BuildSecrets:
    """The build secrets a spawned spec carries, opened as the agent's driver does."""
    return spec.open_build_secrets(cloud.settings)


def request_spec(cloud, uuid: str) -> dict:
    with cloud.db.reader() as s:
        return s.scalar(select(Instance.request_spec).where(Instance.uuid == uuid))


def server_count(cloud) -> int:
    with cloud.db.reader() as s:
        return len(s.scalars(select(Instance.uuid)).all())


def test_admin_pass_and_files_reach_the_host_then_leave_the_database(
        api, cloud, member, flavor, image, spawned):
    files = [{"path": "/etc/motd", "contents": b64(b"hello\n")},
             {"path": "/root/blob", "contents": b64(bytes(range(256)))}]
    body = server_body(flavor, image, adminPass="s3cret-Pass", personality=files)
    r = api.post(SERVERS, json=body, headers=member.compute(PERSONALITY_MV))
    assert r.status_code == 202, r.text
    assert r.json()["server"]["adminPass"] == "s3cret-Pass"
    uuid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), uuid, "ACTIVE")

    drive = spawned[uuid].config_drive
    assert drive.admin_pass is None and not drive.injected_files  # sealed
    secrets = opened(cloud, spawned[uuid])
    assert secrets.admin_pass == "s3cret-Pass"
    assert secrets.injected_files == [("/etc/motd", b"hello\n"), ("/root/blob", bytes(range(256)))]
    left = request_spec(cloud, uuid)
    assert not set(left) & set(instances.BUILD_SECRETS)
    assert left["networks"] == "none"  # what the build still needs is kept


def test_a_generated_password_is_the_one_the_host_gets(api, cloud, member, flavor, image,
                                                       spawned):
    r = api.post(SERVERS, json=server_body(flavor, image), headers=member.compute())
    assert r.status_code == 202, r.text
    created = r.json()["server"]
    wait_for_status(api, member.compute(), created["id"], "ACTIVE")

    assert len(created["adminPass"]) >= 12
    secrets = opened(cloud, spawned[created["id"]])
    assert secrets.admin_pass == created["adminPass"]
    assert secrets.injected_files == []


def test_personality_is_refused_from_2_57(api, cloud, member, flavor, image):
    before = server_count(cloud)
    body = server_body(flavor, image, personality=[{"path": "/a", "contents": b64(b"x")}])
    r = api.post(SERVERS, json=body, headers=member.compute("2.57"))
    assert r.status_code == 400
    assert "'personality' was unexpected" in r.json()["badRequest"]["message"]
    assert server_count(cloud) == before


@pytest.mark.parametrize(("files", "status", "message"), [
    ([{"path": f"/f{i}", "contents": b64(b"x")} for i in range(6)], 403,
     "Personality file limit exceeded"),
    ([{"path": "/" + "p" * 255, "contents": b64(b"x")}], 403,
     "Personality file path exceeds maximum 255"),
    ([{"path": "/big", "contents": b64(b"x" * 10241)}], 403,
     "Personality file content exceeds maximum 10240"),
    ([{"path": "/bad", "contents": "not base64!"}], 400,
     "Personality content for /bad cannot be decoded"),
    ([{"path": "/a"}], 400, "'contents' is a required property"),
    ([{"path": "/a", "contents": "", "mode": "0600"}], 400, "'mode' was unexpected"),
])
def test_bad_or_oversized_personality_is_refused_and_creates_nothing(
        api, cloud, member, flavor, image, files, status, message):
    before = server_count(cloud)
    body = server_body(flavor, image, personality=files)
    r = api.post(SERVERS, json=body, headers=member.compute(PERSONALITY_MV))
    assert r.status_code == status, r.text
    (error,) = r.json().values()
    assert message in error["message"]
    assert server_count(cloud) == before


def test_limits_at_the_edge_are_accepted(api, cloud, member, flavor, image, spawned):
    files = [{"path": "/" + "p" * 254, "contents": b64(b"x" * 10240)}] + [
        {"path": f"/f{i}", "contents": b64(b"")} for i in range(4)]
    r = api.post(SERVERS, json=server_body(flavor, image, personality=files),
                 headers=member.compute(PERSONALITY_MV))
    assert r.status_code == 202, r.text
    uuid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), uuid, "ACTIVE")
    assert len(opened(cloud, spawned[uuid]).injected_files) == 5


def test_a_server_that_fails_to_build_keeps_no_password(api, cloud, member, flavor, image):
    cloud.settings.fake.failure_rate = 1.0
    r = api.post(SERVERS, json=server_body(flavor, image, adminPass="never-used"),
                 headers=member.compute())
    assert r.status_code == 202, r.text
    uuid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), uuid, "ERROR")
    assert not set(request_spec(cloud, uuid)) & set(instances.BUILD_SECRETS)


def test_a_deleted_server_keeps_no_password(api, cloud, member, flavor, image):
    r = api.post(SERVERS, json=server_body(flavor, image, adminPass="gone-soon"),
                 headers=member.compute())
    uuid = r.json()["server"]["id"]
    wait_for_status(api, member.compute(), uuid, "ACTIVE")
    assert api.delete(f"{SERVERS}/{uuid}", headers=member.compute()).status_code == 204
    wait_for_status(api, member.compute(), uuid, "DELETED")
    assert not set(request_spec(cloud, uuid)) & set(instances.BUILD_SECRETS)
