"""scripts/tempest's own parts (tests/conformance/tempest_run.py), without running Tempest:
the tempest.conf written from what a running all-in-one announces, and the reading of a
subunit stream into per-service figures, failure lines and the known-failures ratchet."""

from __future__ import annotations

import configparser
import io
from pathlib import Path

import httpx
import pytest
import subunit

from tests.conformance import tempest_conf as tc
from tests.conformance import tempest_results as tres
from tests.conformance import tempest_run
from tests.e2e.conftest import AllInOne

pytestmark = pytest.mark.e2e


def _admin(all_in_one: AllInOne) -> tc.Cloud:
    auth = all_in_one.admin_auth
    return tc.Cloud(tc.Credentials(auth["auth_url"], auth["username"], auth["password"],
                                   auth["project_name"], auth["user_domain_name"],
                                   auth["project_domain_name"]))


def test_conf_from_discovery(all_in_one: AllInOne, tmp_path: Path) -> None:
    cloud = _admin(all_in_one)
    d = tc.discover(cloud)
    # What the cloud itself says, fetched independently of the harness.
    version = httpx.get(f"{all_in_one.url}/compute/v2.1/").json()["version"]
    extensions = httpx.get(f"{all_in_one.url}/network/v2.0/extensions",
                           headers={"X-Auth-Token": cloud.token}).json()["extensions"]
    assert d.services == {"identity": f"{all_in_one.url}/identity",
                          "compute": f"{all_in_one.url}/compute/v2.1",
                          "image": f"{all_in_one.url}/image",
                          "network": f"{all_in_one.url}/network",
                          "block-storage": f"{all_in_one.url}/volume/v3",
                          "volumev3": f"{all_in_one.url}/volume/v3"}
    assert (d.compute_min, d.compute_max) == (version["min_version"], version["version"])
    assert d.network_extensions == sorted(e["alias"] for e in extensions)
    assert d.hypervisors >= 1

    fx = tc.Fixtures("f1", "f2", "i1", "i2", "pub")
    path = tmp_path / "tempest.conf"
    tc.write_conf(tc.render_conf(d, cloud.creds, fx), path)
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(path)
    assert conf["identity"]["uri_v3"] == f"{all_in_one.url}/identity/v3"
    assert conf["auth"]["admin_password"] == all_in_one.admin_auth["password"]
    assert conf["compute"]["min_microversion"] == version["min_version"]
    assert conf["compute"]["max_microversion"] == version["version"]
    assert (conf["compute"]["image_ref"], conf["compute"]["flavor_ref_alt"]) == ("i1", "f2")
    assert conf["network-feature-enabled"]["api_extensions"].split(",") == d.network_extensions
    assert conf["network-feature-enabled"]["ipv6"] == "true"
    assert conf["network-feature-enabled"]["floating_ips"] == "true"
    assert conf["network"]["public_network_id"] == "pub"
    assert conf["service_available"]["cinder"] == "true"  # issue 15
    v3 = httpx.get(f"{all_in_one.url}/volume/v3/").json()["versions"][0]
    assert conf["volume"]["max_microversion"] == v3["version"] == "3.60"
    assert conf["volume"]["catalog_type"] == "block-storage"
    assert "os-volume-actions" in conf["volume-feature-enabled"]["api_extensions"].split(",")
    assert conf["volume-feature-enabled"]["extend_attached_volume"] == "true"  # online extend
    assert conf["service_available"]["nova"] == "true"
    assert conf["validation"]["run_validation"] == "false"
    assert conf["image-feature-enabled"]["import_image"] == (
        "true" if "glance-direct" in d.image_import_methods else "false")


def test_prepare_makes_flavors_and_images_once(all_in_one: AllInOne) -> None:
    cloud = _admin(all_in_one)
    d = tc.discover(cloud)
    first = tc.prepare(cloud, d)
    assert tc.prepare(cloud, d) == first  # found again by id and name, not made twice
    flavor = cloud.get(f"{d.services['compute']}/flavors/{first.flavor_ref_alt}").json()
    assert flavor["flavor"]["disk"] > 0
    image = cloud.get(f"{d.services['image']}/v2/images/{first.image_ref}").json()
    assert image["status"] == "active" and first.image_ref != first.image_ref_alt
    public = cloud.get(f"{d.services['network']}/v2.0/networks/{first.public_network_id}").json()
    assert public["network"]["router:external"] is True and public["network"]["subnets"]


def _stream() -> bytes:
    out = io.BytesIO()
    w = subunit.StreamResultToBytes(out)
    base = "tempest.api.compute.servers.test_x.ServersTest"
    w.status(test_id=f"{base}.test_ok[id-1,smoke]", test_status="success")
    log = ("2026-12-06 INFO [tempest.lib.common.rest_client] Request (ServersTest:test_bad): "
           "200 GET http://127.0.0.1:1234/compute/v2.1/servers 0.01s\n"
           "2026-12-06 INFO [tempest.lib.common.rest_client] Request (ServersTest:test_bad): "
           "404 POST http://127.0.0.1:1234/compute/v2.1/servers/0123456789abcdef0123456789abcdef/action 0.01s\n")
    tb = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
          "    raise exceptions.NotFound(resp_body, resp=resp)\n"
          "tempest.lib.exceptions.NotFound: Object not found\n"
          "Details: {'code': 404, 'message': 'nope'}\n")
    w.status(test_id=f"{base}.test_bad[id-2]", test_status="inprogress")
    w.status(test_id=f"{base}.test_bad[id-2]", file_name="pythonlogging:''",
             file_bytes=log.encode(), mime_type="text/plain; charset=utf8", eof=True)
    w.status(test_id=f"{base}.test_bad[id-2]", file_name="traceback",
             file_bytes=tb.encode(), mime_type="text/x-traceback; charset=utf8", eof=True)
    w.status(test_id=f"{base}.test_bad[id-2]", test_status="fail")
    w.status(test_id="tempest.api.image.v2.test_images.ImagesTest.test_skip[id-3]",
             test_status="skip", file_name="reason", file_bytes=b"no import",
             mime_type="text/plain; charset=utf8", eof=True)
    w.status(test_id="setUpClass (tempest.api.identity.admin.v3.test_domains.DomainsTest)",
             test_status="fail", file_name="traceback",
             file_bytes=b"Traceback:\nAssertionError: 1 != 2\n",
             mime_type="text/x-traceback; charset=utf8", eof=True)
    w.status(test_id="tempest.api.network.test_ports.PortsTest.test_fixed[id-4]",
             test_status="success")
    return out.getvalue()


def test_results_per_service_and_summaries() -> None:
    results = tres.parse_subunit(_stream())
    per = tres.tally(results)
    assert per["compute"] == {"passed": 1, "failed": 1}
    assert per["image"] == {"skipped": 1}
    assert per["identity"] == {"failed": 1}
    assert per["network"] == {"passed": 1}
    bad = next(r for r in results if "test_bad" in r.test_id)
    assert bad.summary.startswith("POST /compute/v2.1/servers/{id}/action -> 404; "
                                  "tempest.lib.exceptions.NotFound: Object not found")
    assert "nope" in bad.summary
    report = tres.failures_report(results)
    assert "tempest.api.identity.admin.v3.test_domains.DomainsTest  # " in report
    assert "AssertionError: 1 != 2" in report


def test_known_failures_ratchet(tmp_path: Path) -> None:
    results = tres.parse_subunit(_stream())
    known = tmp_path / "known.txt"
    known.write_text("# header\n"
                     "tempest.api.compute.servers.test_x.ServersTest.test_bad  # 404\n"
                     "tempest.api.network.test_ports.PortsTest.test_fixed  # was wrong\n"
                     "tempest.api.network.test_ports.PortsTest  # setUpClass failed\n"
                     "tempest.api.image.v2.test_images.Other.test_not_run  # not run\n")
    new, fixed = tres.compare(results, [e for e, _ in tres.read_list(known)])
    assert [tres.normalise_id(r.test_id) for r in new] == [
        "tempest.api.identity.admin.v3.test_domains.DomainsTest"]
    assert fixed == ["tempest.api.network.test_ports.PortsTest.test_fixed",
                     "tempest.api.network.test_ports.PortsTest"]


def test_exclude_file_names_an_issue_for_every_entry() -> None:
    entries = tres.read_list(tempest_run.EXCLUDE_FILE)
    assert entries
    for regex, reason in entries:
        assert "issue" in reason, f"{regex}: the reason must name the issue that builds it"
