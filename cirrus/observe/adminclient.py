"""A small client of Cirrus's admin API for `cirrus log-level`: a token from clouds.yaml
(password authentication against /identity/v3), then JSON requests under the API's base URL.

Plain urllib: the `cirrus` command needs no HTTP client library beyond the standard one.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

TIMEOUT = 30.0


class AdminClientError(Exception):
    """What went wrong, in words fit for the terminal."""


def clouds_yaml_candidates() -> list[Path]:
    """Where openstacksdk looks for clouds.yaml, in its order."""
    paths = []
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(os.environ["OS_CLIENT_CONFIG_FILE"]))
    paths += [Path.cwd() / "clouds.yaml", Path.home() / ".config/openstack/clouds.yaml",
              Path("/etc/openstack/clouds.yaml")]
    return paths


def load_cloud(name: str, path: str | os.PathLike | None = None) -> dict:
    candidates = [Path(path)] if path else clouds_yaml_candidates()
    for candidate in candidates:
        if candidate.is_file():
            doc = yaml.safe_load(candidate.read_text()) or {}
            cloud = (doc.get("clouds") or {}).get(name)
            if cloud is None:
                raise AdminClientError(f"{candidate} has no cloud named {name!r}")
            return cloud
    raise AdminClientError("no clouds.yaml found (looked in "
                           + ", ".join(str(c) for c in candidates) + ")")


def api_base_url(auth_url: str) -> str:
    """http://lb:8774/identity/v3 -> http://lb:8774: every Cirrus API shares one base."""
    url = auth_url.rstrip("/")
    for suffix in ("/v3", "/identity"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _ssl_context(cloud: dict) -> ssl.SSLContext | None:
    if cloud.get("verify") is False or cloud.get("insecure") is True:
        return ssl._create_unverified_context()  # the operator asked for it in clouds.yaml
    if cloud.get("cacert"):
        return ssl.create_default_context(cafile=cloud["cacert"])
    return None


def _send(url: str, method: str, body: dict | None, headers: dict[str, str],
          context: ssl.SSLContext | None) -> tuple[dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", **({"Content-Type": "application/json"} if data else {}),
        **headers})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            raw = response.read()
            return (json.loads(raw) if raw else {}), dict(response.headers)
    except urllib.error.HTTPError as exc:
        raise AdminClientError(f"{method} {url}: {exc.code} {_error_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminClientError(f"{method} {url}: cannot connect ({reason})") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return body.get("error", {}).get("message") or json.dumps(body)
    except (ValueError, AttributeError):
        return exc.reason or ""


@dataclass
class AdminSession:
    base_url: str
    token: str
    context: ssl.SSLContext | None

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        result, _ = _send(self.base_url + path, method, body, {"X-Auth-Token": self.token},
                          self.context)
        return result


def password_token(cloud: dict, context: ssl.SSLContext | None) -> str:
    """A project-scoped token for the cloud's user (Keystone v3 password method)."""
    auth = cloud.get("auth") or {}
    missing = [key for key in ("auth_url", "username", "password") if not auth.get(key)]
    if missing:
        raise AdminClientError(f"the cloud's auth lacks {', '.join(missing)}")
    auth_url = auth["auth_url"].rstrip("/")
    if not auth_url.endswith("/v3"):
        auth_url += "/v3"
    user = {"name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name") or "Default"}}
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    if auth.get("project_name"):
        body["auth"]["scope"] = {"project": {
            "name": auth["project_name"],
            "domain": {"name": auth.get("project_domain_name") or "Default"}}}
    _, headers = _send(f"{auth_url}/auth/tokens", "POST", body, {}, context)
    token = {k.lower(): v for k, v in headers.items()}.get("x-subject-token")
    if not token:
        raise AdminClientError("the identity service returned no token")
    return token


def admin_session(cloud_name: str | None = None, url: str | None = None,
                  clouds_yaml: str | None = None) -> AdminSession:
    cloud = load_cloud(cloud_name or os.environ.get("OS_CLOUD") or "cirrus", clouds_yaml)
    context = _ssl_context(cloud)
    token = password_token(cloud, context)
    base = (url or api_base_url((cloud.get("auth") or {})["auth_url"])).rstrip("/")
    return AdminSession(base, token, context)
