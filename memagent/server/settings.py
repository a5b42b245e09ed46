"""The server's size limits, and the environment that ``memagent serve --http`` hands its workers.

>>> ServerLimits().max_k
200
>>> ServerLimits.from_env({"MEMAGENT_MAX_K": "50"}).max_k
50
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024
ENV_PREFIX = "MEMAGENT_"


class ServerLimits(BaseModel):
    """What one request may carry; past a limit the answer is a 4xx with code ``too_large``
    (413 for a body, 414 for a query string) or ``invalid_input`` (422), never a 500.

    Each can be set from the environment as ``MEMAGENT_<NAME>`` (``MEMAGENT_MAX_BODY_BYTES=1048576``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(8 * MiB, ge=1, description="request body of every endpoint but import (413)")
    max_import_bytes: int = Field(256 * MiB, ge=1, description="JSON Lines body of POST /v1/import (413)")
    max_query_string_bytes: int = Field(8192, ge=1, description="the URL's query string (414)")
    max_text_chars: int = Field(8000, ge=1, description="a search query or a question (422)")
    max_k: int = Field(200, ge=1, description="hits one search may ask for (422)")
    max_page_limit: int = Field(1000, ge=1, description="episodes one page of a listing may hold (422)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerLimits:
        """Limits with each ``MEMAGENT_<NAME>`` found in ``environ`` applied."""
        given = {name: environ[ENV_PREFIX + name.upper()] for name in cls.model_fields
                 if ENV_PREFIX + name.upper() in environ}
        return cls.model_validate(given)
