"""Key pairs through the compute API: generate, import, list, show, delete, per microversion."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs12

from cirrus.compute import keypairs as keypair_service
from cirrus.errors import NotFound

BASE = "/compute/v2.1"


def md5_colons(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def new_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " me@host"


def post(api, caller, mv: str = "2.60", **keypair):
    return api.post(f"{BASE}/os-keypairs", headers=caller.compute(mv), json={"keypair": keypair})


# ---------------------------------------------------------------- create


def test_generate_at_2_1_answers_200_with_a_working_private_key(api, member):
    r = post(api, member, "2.1", name="k1")
    assert r.status_code == 200
    kp = r.json()["keypair"]
    assert set(kp) == {"name", "public_key", "fingerprint", "user_id", "private_key"}
    assert kp["user_id"] == member.user_id
    assert kp["public_key"].startswith("ssh-rsa ")
    assert kp["fingerprint"] == md5_colons(kp["public_key"])
    private = serialization.load_pem_private_key(kp["private_key"].encode(), password=None)
    assert private.key_size == 2048
    derived = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode()
    assert kp["public_key"].split()[:2] == derived.split()[:2]


def test_from_2_2_create_is_201_with_a_type(api, member):
    r = post(api, member, "2.2", name="k2")
    assert r.status_code == 201
    assert r.json()["keypair"]["type"] == "ssh"


def test_import_keeps_the_public_key_and_returns_no_private_key(api, member):
    public = new_public_key()
    r = post(api, member, name="imported", public_key=public)
    assert r.status_code == 201
    kp = r.json()["keypair"]
    assert "private_key" not in kp
    assert kp["public_key"] == public
    assert kp["fingerprint"] == md5_colons(public)


def test_import_of_a_bad_key_is_400(api, member):
    r = post(api, member, name="bad", public_key="ssh-rsa not-base64!")
    assert r.status_code == 400
    assert "Keypair data is invalid" in r.json()["badRequest"]["message"]
    assert post(api, member, name="bad2", public_key="").status_code == 400


def test_x509_keypairs_generate_and_import(api, member):
    r = post(api, member, "2.2", name="cert", type="x509")
    assert r.status_code == 201
    kp = r.json()["keypair"]
    cert = x509.load_pem_x509_certificate(kp["public_key"].encode())
    assert kp["fingerprint"] == cert.fingerprint(hashes.SHA1()).hex(":")
    key, loaded, _ = pkcs12.load_key_and_certificates(base64.b64decode(kp["private_key"]), None)
    assert loaded == cert and key is not None
    r = post(api, member, "2.2", name="cert2", type="x509", public_key=kp["public_key"])
    assert r.status_code == 201
    assert r.json()["keypair"]["fingerprint"] == kp["fingerprint"]
    bad = post(api, member, "2.2", name="cert3", type="x509", public_key=new_public_key())
    assert bad.status_code == 400


@pytest.mark.parametrize("mv,extra", [("2.1", {"type": "ssh"}), ("2.2", {"type": "rsa"}),
                                      ("2.9", {"user_id": "someone"})])
def test_fields_outside_their_microversion_are_400(api, member, mv, extra):
    r = post(api, member, mv, name="k", **extra)
    assert r.status_code == 400
    assert "keypair" in r.json()["badRequest"]["message"]


@pytest.mark.parametrize("name", ["", "has/slash", " leading", "x" * 256, "dots.are.bad"])
def test_bad_names_are_400_naming_the_field(api, member, name):
    r = post(api, member, name=name)
    assert r.status_code == 400
    assert "keypair/name" in r.json()["badRequest"]["message"]


def test_duplicate_name_is_409_but_other_users_may_reuse_it(api, member, other_member):
    assert post(api, member, name="dup", public_key=new_public_key()).status_code == 201
    r = post(api, member, name="dup", public_key=new_public_key())
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == "Key pair 'dup' already exists."
    assert post(api, other_member, name="dup", public_key=new_public_key()).status_code == 201


def test_key_pairs_quota_is_enforced(api, admin, member):
    r = api.put(f"{BASE}/os-quota-sets/{member.project_id}", headers=admin.compute(),
                json={"quota_set": {"key_pairs": 1}})
    assert r.status_code == 200
    assert post(api, member, name="one", public_key=new_public_key()).status_code == 201
    r = post(api, member, name="two", public_key=new_public_key())
    assert r.status_code == 403
    assert "too many key pairs" in r.json()["forbidden"]["message"]


def test_readers_cannot_create_or_delete(api, reader, member):
    assert post(api, reader, name="r").status_code == 403
    post(api, member, name="m", public_key=new_public_key())
    assert api.delete(f"{BASE}/os-keypairs/m", headers=reader.compute()).status_code == 403


# ---------------------------------------------------------------- list, show, delete


def test_list_shape_per_microversion(api, member):
    public = new_public_key()
    post(api, member, name="listed", public_key=public)
    r = api.get(f"{BASE}/os-keypairs", headers=member.compute("2.1"))
    assert r.json() == {"keypairs": [{"keypair": {
        "name": "listed", "public_key": public, "fingerprint": md5_colons(public)}}]}
    r = api.get(f"{BASE}/os-keypairs", headers=member.compute("2.2"))
    assert r.json()["keypairs"][0]["keypair"]["type"] == "ssh"


def test_list_pages_from_2_35(api, member):
    for name in ("c", "a", "b"):
        post(api, member, name=name, public_key=new_public_key())
    r = api.get(f"{BASE}/os-keypairs?limit=2", headers=member.compute("2.35"))
    body = r.json()
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b"]
    assert body["keypairs_links"] == [{
        "rel": "next", "href": f"http://testserver{BASE}/os-keypairs?limit=2&marker=b"}]
    r = api.get(f"{BASE}/os-keypairs?limit=2&marker=b", headers=member.compute("2.35"))
    assert [k["keypair"]["name"] for k in r.json()["keypairs"]] == ["c"]
    assert "keypairs_links" not in r.json()
    # Before 2.35 paging parameters are ignored.
    r = api.get(f"{BASE}/os-keypairs?limit=1", headers=member.compute("2.34"))
    assert len(r.json()["keypairs"]) == 3 and "keypairs_links" not in r.json()
    assert api.get(f"{BASE}/os-keypairs?marker=zzz",
                   headers=member.compute("2.35")).status_code == 400


def test_show_has_the_record_fields(api, member):
    post(api, member, name="shown", public_key=new_public_key())
    r = api.get(f"{BASE}/os-keypairs/shown", headers=member.compute("2.1"))
    kp = r.json()["keypair"]
    assert set(kp) == {"name", "public_key", "fingerprint", "user_id", "created_at", "deleted",
                       "deleted_at", "id", "updated_at"}
    assert kp["deleted"] is False and kp["deleted_at"] is None and kp["updated_at"] is None
    assert isinstance(kp["id"], int)
    assert kp["user_id"] == member.user_id
    r = api.get(f"{BASE}/os-keypairs/shown", headers=member.compute("2.2"))
    assert r.json()["keypair"]["type"] == "ssh"


def test_keypairs_are_private_to_their_user(api, member, other_member):
    post(api, member, name="mine", public_key=new_public_key())
    assert api.get(f"{BASE}/os-keypairs/mine", headers=other_member.compute()).status_code == 404
    assert api.get(f"{BASE}/os-keypairs", headers=other_member.compute()).json() == {
        "keypairs": []}
    assert api.delete(f"{BASE}/os-keypairs/mine",
                      headers=other_member.compute()).status_code == 404


def test_delete_status_changes_at_2_2(api, member):
    post(api, member, name="d1", public_key=new_public_key())
    post(api, member, name="d2", public_key=new_public_key())
    assert api.delete(f"{BASE}/os-keypairs/d1", headers=member.compute("2.1")).status_code == 202
    r = api.delete(f"{BASE}/os-keypairs/d2", headers=member.compute("2.2"))
    assert r.status_code == 204 and r.content == b""
    r = api.get(f"{BASE}/os-keypairs/d1", headers=member.compute())
    assert r.status_code == 404
    assert api.delete(f"{BASE}/os-keypairs/d1", headers=member.compute()).status_code == 404


def test_admins_manage_other_users_keypairs_from_2_10(api, admin, member, other_member):
    r = post(api, admin, "2.10", name="given", user_id=member.user_id,
             public_key=new_public_key())
    assert r.status_code == 201
    assert r.json()["keypair"]["user_id"] == member.user_id
    listed = api.get(f"{BASE}/os-keypairs?user_id={member.user_id}", headers=admin.compute())
    assert [k["keypair"]["name"] for k in listed.json()["keypairs"]] == ["given"]
    assert api.get(f"{BASE}/os-keypairs/given", headers=member.compute()).status_code == 200
    # Before 2.10 the user_id query parameter is ignored: the admin sees their own.
    r = api.get(f"{BASE}/os-keypairs?user_id={member.user_id}", headers=admin.compute("2.9"))
    assert r.json()["keypairs"] == []
    # Non-admins may not name another user.
    r = api.get(f"{BASE}/os-keypairs?user_id={member.user_id}", headers=other_member.compute())
    assert r.status_code == 403
    assert post(api, other_member, name="x", user_id=member.user_id).status_code == 403
    r = api.delete(f"{BASE}/os-keypairs/given?user_id={member.user_id}", headers=admin.compute())
    assert r.status_code == 204


def test_get_keypair_for_the_servers_api(cloud, api, member):
    post(api, member, name="boot", public_key=new_public_key())
    with cloud.db.reader() as s:
        assert keypair_service.get_keypair(s, member.user_id, "boot").name == "boot"
        with pytest.raises(NotFound):
            keypair_service.get_keypair(s, "someone-else", "boot")
