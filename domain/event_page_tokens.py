"""Tamper-evident page tokens for ListUserEvents: a user and the last sequence of a page, signed."""

from __future__ import annotations

import struct
import uuid

from domain.errors import InvalidValue
from domain.signed_tokens import TokenSigner
from domain.values import UserId

# Another format byte than ListUsers' tokens (domain.page_tokens), so neither passes for the other.
_FORMAT = b"\x02"
_BODY = struct.Struct(">c16sQ")  # format, user id, last sequence of the page


class EventPageTokenCodec:
    """Turns (user, last sequence) into a token and back; refuses tokens it did not make, and
    tokens made for another user's list."""

    def __init__(self, key: bytes) -> None:
        self._signer = TokenSigner(key)

    def encode(self, user_id: UserId, last_sequence: int) -> str:
        return self._signer.seal(_BODY.pack(_FORMAT, uuid.UUID(user_id.value).bytes, last_sequence))

    def decode(self, token: str, user_id: UserId) -> int:
        """The last sequence of the page ``token`` follows; InvalidValue if forged or not
        issued for ``user_id``."""
        body = self._signer.open(token)
        if body is not None and len(body) == _BODY.size:
            kind, user, last_sequence = _BODY.unpack(body)
            if kind == _FORMAT and user == uuid.UUID(user_id.value).bytes:
                return int(last_sequence)
        raise InvalidValue(
            "is not a page token issued by this service for this user_id; "
            "start again with an empty page_token"
        )
