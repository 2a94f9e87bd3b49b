"""What the commands check before they start, and how they fail: one line on stderr (and in
the JSON log once it is set up), an exit code."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from cirrus import files
from cirrus.config import Settings

log = logging.getLogger("cirrus")


def check_tls(settings: Settings) -> str | None:
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


def fail(command: str, message: str, code: int = 1) -> int:
    if logging.getLogger().handlers:  # the JSON log too, once it is set up
        log.error("%s: %s", command, message)
    print(f"cirrus {command}: {message}", file=sys.stderr, flush=True)
    return code


def apply_file_modes(settings: Settings) -> str | None:
    """The umask and modes for `file_group` (main() already made the umask private);
    what is wrong with the setting, or None."""
    try:
        files.apply(settings)
    except files.FileGroupError as exc:
        return str(exc)
    return None


def ensure_sqlite_dir(settings: Settings) -> None:
    """SQLite creates the file, not the directory it lives in."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        files.make_dirs(Path(url.database).parent)


def schema_problem(settings: Settings) -> str | None:
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


def token_key_problem(settings: Settings) -> str | None:
    """Why this API process could not sign tokens, or None."""
    from cirrus.identity.keys import KeyRepository

    directory = settings.effective_token_key_dir
    if KeyRepository(directory).load().primary is None:
        return (f"no token signing key in {directory} (token_key_dir): run `cirrus "
                "token-keys setup` (or `cirrus bootstrap`) there, and give every API process "
                "of the deployment the same directory (docs/deployment.md)")
    return None
