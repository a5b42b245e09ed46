"""Tenants: every user id a caller names lives inside the caller's tenant.

A key of tenant ``acme`` naming user ``bob`` reaches the internal user
``acme:bob``; every response names ``bob`` again. Tenant names cannot hold
``:``, so no name a caller can send leaves its tenant: another tenant's
``bob`` is, for this caller, a user that does not exist. A server without keys
has one namespace without a prefix (``tenant=None``), the user ids of an app that
embeds ``Memory`` on the same data directory.

>>> acme = Namespace("acme")
>>> acme.inside("bob"), acme.outside("acme:bob"), acme.users(["acme:bob", "globex:bob", "acme:eve"])
('acme:bob', 'bob', ['bob', 'eve'])
>>> Namespace(None).inside("bob")
'bob'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memagent.errors import InvalidInputError
from memagent.tiers.episodic import check_id


@dataclass(frozen=True)
class Namespace:
    """The users one caller can name: those of ``tenant``, or every user when ``tenant`` is ``None``."""

    tenant: str | None

    @property
    def prefix(self) -> str:
        return f"{self.tenant}:" if self.tenant is not None else ""

    def inside(self, user_id: str) -> str:
        """The internal id of a user the caller names (checked like every user id)."""
        check_id(user_id)
        return check_id(self.prefix + user_id)

    def outside(self, internal: str) -> str:
        """The caller's name of an internal user id of its tenant."""
        if not self.owns(internal):
            raise InvalidInputError("a user of another tenant")  # a bug if it ever happens: never show it
        return internal[len(self.prefix):]

    def owns(self, internal: str) -> bool:
        return internal.startswith(self.prefix)

    def users(self, internal: Iterable[str]) -> list[str]:
        """The caller's names of the users of its tenant among ``internal``, sorted."""
        return sorted(self.outside(u) for u in internal if self.owns(u))

    def message(self, text: str) -> str:
        """An error message with the tenant prefix taken out of every user id in it."""
        for quote in "'\"":
            text = text.replace(quote + self.prefix, quote) if self.prefix else text
        return text
