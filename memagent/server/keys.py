"""API keys: each belongs to one tenant and is stored only as its SHA-256 hex digest.

A keys file maps each tenant to the digests of its keys, in TOML (any name but
``*.json``) or JSON::

    # memagent API keys
    acme = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]

``memagent keys add acme --file keys.toml`` makes a new key, prints it once and
writes only its digest. ``MEMAGENT_API_KEYS="acme:<digest>,globex:<digest>"``
adds keys from the environment.

>>> ring = KeyRing({"acme": [hash_key("secret")]})
>>> ring.tenant_of("secret"), ring.tenant_of("guess")
('acme', None)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from memagent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TENANT = re.compile(r"[A-Za-z0-9_-]+")
_DIGEST = re.compile(r"[0-9a-f]{64}")
KEY_PREFIX = "mk_"
ENV_KEYS = "MEMAGENT_API_KEYS"


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_tenant(name: object) -> str:
    """Return ``name`` if it is a usable tenant name (letters, digits, ``_`` and ``-``), else raise."""
    if not isinstance(name, str) or not TENANT.fullmatch(name):
        raise ConfigError(f"tenant name {name!r} must be letters, digits, '_' or '-'")
    return name


class KeyRing:
    """The tenants and the digests of their keys; ``tenant_of`` finds a presented key's tenant."""

    def __init__(self, tenants: Mapping[str, Sequence[str]] | None = None) -> None:
        self.tenants: dict[str, list[str]] = {}
        for tenant, digests in (tenants or {}).items():
            self.add(tenant, digests)

    def add(self, tenant: str, digests: Sequence[str]) -> None:
        """Give a tenant more key digests; a digest of another tenant is refused."""
        check_tenant(tenant)
        if isinstance(digests, str) or not all(isinstance(d, str) for d in digests):
            raise ConfigError(f"tenant {tenant!r}: keys must be a list of SHA-256 hex digests")
        for digest in digests:
            digest = digest.strip().lower()
            if not _DIGEST.fullmatch(digest):
                raise ConfigError(f"tenant {tenant!r}: {digest[:12]!r}... is not a SHA-256 hex digest")
            owner = self._owner(digest)
            if owner not in (None, tenant):
                raise ConfigError(f"one key digest belongs to tenants {owner!r} and {tenant!r}")
            if owner is None:
                self.tenants.setdefault(tenant, []).append(digest)

    def _owner(self, digest: str) -> str | None:
        return next((t for t, known in self.tenants.items() if digest in known), None)

    def tenant_of(self, key: str) -> str | None:
        """The tenant of a presented key, or ``None``; every digest is compared in constant time."""
        digest = hash_key(key)
        found = None
        for tenant, digests in self.tenants.items():
            for known in digests:
                if hmac.compare_digest(digest, known):
                    found = tenant
        return found

    def __len__(self) -> int:
        return sum(len(d) for d in self.tenants.values())

    # --- reading and writing ----------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None, env: str | None = None) -> KeyRing:
        """The keys of a keys file and/or of an ``MEMAGENT_API_KEYS`` value (``tenant:digest,...``)."""
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"keys file {path} does not exist (memagent keys add TENANT --file {path} makes it)")
        ring = cls(read_file(Path(path)) if path is not None else None)
        for item in (env or "").split(","):
            if item.strip():
                tenant, sep, digest = item.strip().partition(":")
                if not sep:
                    raise ConfigError(f"{ENV_KEYS}: {item.strip()[:20]!r}... is not tenant:sha256-digest")
                ring.add(tenant, [digest])
        return ring


def read_file(path: Path) -> dict[str, list[str]]:
    """A keys file's tenants and digests; a missing file has none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read keys file {path}: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"keys file {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f"keys file {path}: expected tenant = [digests, ...]")
    return data


def write_file(path: Path, tenants: Mapping[str, Sequence[str]]) -> None:
    """Write a keys file whole, atomically, readable by its owner only (comments are not kept)."""
    if path.suffix == ".json":
        text = json.dumps(dict(tenants), indent=2, sort_keys=True) + "\n"
    else:
        lines = ["# memagent API keys: tenant = [SHA-256 hex digests of its keys].",
                 "# Add one with: memagent keys add TENANT --file " + path.name]
        for tenant in sorted(tenants):
            lines += [f"{check_tenant(tenant)} = ["] + [f'    "{d}",' for d in tenants[tenant]] + ["]"]
        text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def add_key(path: str | Path, tenant: str) -> str:
    """Make a key for ``tenant``, store its digest in the keys file, and return the key itself."""
    path = Path(path)
    ring = KeyRing(read_file(path))
    key = new_key()
    ring.add(check_tenant(tenant), [hash_key(key)])
    write_file(path, ring.tenants)
    return key
