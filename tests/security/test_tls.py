"""HTTPS served directly (issue 11, point 7): `cirrus all-in-one --tls` makes a self-signed
pair on first start (key 0600), answers over TLS 1.2+ only, and writes a clouds.yaml the
`openstack` CLI trusts (cacert); `cirrus serve --role api` refuses half a TLS setting."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.security import aio as aiomod

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")]


def _handshake(port: int, version: ssl.TLSVersion) -> str:
    """Connect with exactly `version`; the protocol agreed, or the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer old protocols at all
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.version() or ""
        except ssl.SSLError as exc:
            return f"refused: {exc}"


@pytest.fixture(scope="module")
def https_aio(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("tls") / "data"
    cert = data / "tls" / "cert.pem"
    server = aiomod.start(data, "--tls", scheme="https",
                          verify=lambda: ssl.create_default_context(cafile=str(cert)))
    yield server
    assert server.stop() == 0, server.text()


def test_self_signed_pair_is_made_private_and_named_for_the_host(https_aio) -> None:
    from cryptography import x509

    tls = https_aio.data_dir / "tls"
    assert stat.S_IMODE((tls / "key.pem").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tls / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    cloud = yaml.safe_load(https_aio.clouds_yaml.read_text())["clouds"]["cirrus"]
    assert cloud["cacert"] == str(tls / "cert.pem")
    assert cloud["auth"]["auth_url"].startswith("https://127.0.0.1:")


def test_answers_over_https_with_links_in_https(https_aio) -> None:
    r = httpx.get(f"{https_aio.url}/identity/v3", verify=https_aio.verify, timeout=10)
    assert r.status_code == 200
    assert r.json()["version"]["links"][0]["href"].startswith("https://")
    plain = https_aio.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/identity/v3", timeout=5)


def test_only_tls_1_2_and_later_are_accepted(https_aio) -> None:
    port = int(https_aio.url.rsplit(":", 1)[1])
    assert _handshake(port, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        answer = _handshake(port, old)
        assert answer.startswith("refused"), answer
        # The server refused it, not this client's own OpenSSL before sending anything.
        assert "NO_PROTOCOLS_AVAILABLE" not in answer, answer


def test_the_openstack_cli_issues_a_token_with_the_written_clouds_yaml(https_aio) -> None:
    command = Path(sys.executable).parent / "openstack"
    if not command.exists():
        pytest.fail("the `openstack` command is not installed beside this Python")
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(https_aio.clouds_yaml),
           "OS_CLOUD": "cirrus"}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("SSL_CERT_FILE", None)
    done = subprocess.run([str(command), "token", "issue", "-f", "json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"]


def test_serve_refuses_half_a_tls_setting(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    done = subprocess.run(
        [sys.executable, "-m", "cirrus.cli", "serve", "--role", "api"],
        env={**os.environ, "CIRRUS_TLS_CERT_FILE": str(cert),
             "CIRRUS_DATA_DIR": str(tmp_path / "data")},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "tls_cert_file and tls_key_file go together" in done.stderr
