"""Hypothesis strategies for hostile UserService requests: unicode, ids, numbers, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from biome.user.v1 import user_service_pb2 as pb
from google.protobuf.message import Message
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from domain.event_cursors import stream_key
from domain.pagination import EventPageTokenCodec, PageTokenCodec
from domain.values import UserId
from persistence.user_repository import SHADOW_USER_ID
from tests.e2e.harness import PAGE_TOKEN_SECRET

# Lengths around every limit of the API (names 100, email 254 with a 64-character local part,
# passwords 8..128 and 1024 when presented, tokens 200, session ids 64), and far beyond.
BOUNDARY_LENGTHS = (1, 7, 8, 9, 63, 64, 65, 99, 100, 101, 127, 128, 129, 199, 200, 201)
FAR_LENGTHS = (253, 254, 255, 1023, 1024, 1025, 5_000, 17_000)
# Repeated to those lengths: 1- to 4-byte UTF-8, a decomposed letter (NFC shortens it), a ligature
# NFKC expands 18-fold, letters case folding lengthens, white space, NUL, an RTL override.
REPEATED_UNITS = ("a", "é", "e\u0301", "中", "😀", "ß", "\ufdfa", " ", "\x00", "\u202e")
# Pieces attackers and unlucky users send: controls, invisible and bidirectional marks, combining
# marks, emoji sequences, look-alike digits, quoting, injection and expression syntax.
ADVERSARIAL = (
    "\x00",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "\r\n",
    "\t",
    "\x1c",
    "\u0085",
    "\u00a0",
    "\u2028",
    "\u200b",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\ufffd",
    "\uffff",
    "\U0010ffff",
    "\ue000",
    "\u0301",
    "Z\u0334\u0321\u031b\u0317\u0344a\u0337l\u0338g\u0335o\u0336",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1fa\U0001f1f8",
    "ß",
    "ﬃ",
    "İ",
    "ǅ",
    "ΐ",
    "\ufdfa",
    "\uff10\uff11\uff12",  # fullwidth digits
    "٣",
    "@",
    ".",
    "..",
    "-",
    "_",
    "%",
    "'",
    '"',
    "\\",
    "<script>",
    "${jndi:ldap://x}",
    "' OR '1'='1",
    ":v",
    "#n",
    "attribute_not_exists(Id)",
    "{}",
    "urn:uuid:",
)
# Passwords the policy accepts (long enough, not common, not an address).
SOUND_PASSWORD = "tangerine-sky-42"
SOUND_NEW_PASSWORD = "violet-harbor-93"
# What validation must refuse, or at least survive, inside otherwise ordinary text.
INVISIBLE = ("\x00", "\x01", "\x1b", "\x7f", "\u200b", "\u202e", "\ufeff", "\ue000", "\U0010ffff")
EDIT_CHARACTERS = ("\x00", "g", "0", "-", ".", " ", "=", "A", "é", "😀", "٣", "+", "/")


@dataclass(frozen=True)
class Known:
    """What exists on the server under fuzz, so that generated requests also get past validation."""

    user_ids: tuple[str, ...]
    emails: tuple[str, ...]
    passwords: tuple[str, ...]
    refresh_tokens: tuple[str, ...]
    reset_tokens: tuple[str, ...]
    session_ids: tuple[str, ...]
    page_tokens: tuple[str, ...]
    # ListUserEvents' next_page_token for user_ids[0], and cursors of recorded events.
    event_page_tokens: tuple[str, ...] = ()
    cursors: tuple[str, ...] = ()
    # Sessions of user_ids[1] (session_ids are user_ids[0]'s): another user's, for EndSession.
    other_session_ids: tuple[str, ...] = ()
    # A pending email change's confirm and cancel tokens (of user_ids[1]).
    email_change_tokens: tuple[str, ...] = ()
    # Verification links' tokens (a pending one and a used one) and the codes mailed with them,
    # and the addresses those went to.
    verification_tokens: tuple[str, ...] = ()
    verification_codes: tuple[str, ...] = ()
    unverified_emails: tuple[str, ...] = ()
    # A user with TOTP on, and its recovery codes.
    totp_user_ids: tuple[str, ...] = ()
    recovery_codes: tuple[str, ...] = ()
    # Sign-in challenges of that user (Authenticate's).
    challenge_tokens: tuple[str, ...] = ()
    # A user with passkeys, their ids, the browser's JSON of a registration (one finished, one
    # for a ceremony still open) and of an assertion for an open sign-in ceremony, and the tokens
    # of sign-in ceremonies.
    passkey_user_ids: tuple[str, ...] = ()
    passkey_ids: tuple[str, ...] = ()
    passkey_registrations: tuple[str, ...] = ()
    passkey_assertions: tuple[str, ...] = ()
    ceremony_tokens: tuple[str, ...] = ()


def characters() -> SearchStrategy[str]:
    """Every code point UTF-8 can carry: controls, NUL, unassigned, private use; no surrogates."""
    return st.characters(codec="utf-8")


def boundary_text() -> SearchStrategy[str]:
    """One unit repeated to a length at or around a limit, sometimes padded with white space."""
    return st.builds(
        lambda pad, unit, length: pad + unit * length + pad,
        st.sampled_from(("", " ", "\t", "\u3000")),
        st.sampled_from(REPEATED_UNITS),
        st.sampled_from(BOUNDARY_LENGTHS + FAR_LENGTHS),
    )


def hostile_text(max_size: int = 40) -> SearchStrategy[str]:
    """Random unicode, adversarial pieces glued together, or strings at and over the limits."""
    piece = st.one_of(st.sampled_from(ADVERSARIAL), st.text(characters(), min_size=1, max_size=3))
    return st.one_of(
        st.text(characters(), max_size=max_size),
        st.lists(piece, max_size=10).map("".join),
        boundary_text(),
    )


def _edit(text: str, kind: str, at: int, char: str) -> str:
    i = at % (len(text) + 1)
    if kind == "replace" and text:
        i %= len(text)
        return text[:i] + char + text[i + 1 :]
    if kind == "delete" and text:
        i %= len(text)
        return text[:i] + text[i + 1 :]
    if kind == "truncate":
        return text[:i]
    if kind == "swapcase":
        return text.swapcase()
    if kind == "double":
        return text + text
    if kind == "pad":
        return f"{char}{text}{char}"
    return text[:i] + char + text[i:]  # insert


def edited(base: SearchStrategy[str]) -> SearchStrategy[str]:
    """A string from ``base`` with one edit: replaced, deleted or inserted character, cut, ..."""
    kinds = ("replace", "delete", "insert", "truncate", "swapcase", "double", "pad")
    return st.builds(
        _edit,
        base,
        st.sampled_from(kinds),
        st.integers(0, 10_000),
        st.sampled_from(EDIT_CHARACTERS),
    )


def spiked(base: SearchStrategy[str]) -> SearchStrategy[str]:
    """A string from ``base`` with one invisible or control character put in."""
    return st.builds(
        lambda text, piece, at: text[: at % (len(text) + 1)] + piece + text[at % (len(text) + 1) :],
        base,
        st.sampled_from(INVISIBLE),
        st.integers(0, 1_000),
    )


def _from(values: Sequence[str], fallback: SearchStrategy[str]) -> SearchStrategy[str]:
    return st.sampled_from(values) if values else fallback


def user_ids(known: Known) -> SearchStrategy[str]:
    """Real and random UUIDs in every spelling uuid.UUID takes, almost-UUIDs, and junk."""
    base = st.one_of(st.uuids().map(str), _from(known.user_ids, st.uuids().map(str)))
    fullwidth = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    return st.one_of(
        base,
        base.map(str.upper),
        base.map(lambda u: "{" + u + "}"),
        base.map(lambda u: "urn:uuid:" + u),
        base.map(lambda u: u.replace("-", "")),
        base.map(lambda u: u.translate(fullwidth)),
        base.map(lambda u: f" \t{u}\n"),
        edited(base),
        st.sampled_from(
            (
                "",
                " ",
                "-",
                "00000000-0000-0000-0000-000000000000",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                SHADOW_USER_ID,
                "not-a-uuid",
                "0" * 31,
                "0" * 33,
                # What int(..., 16) takes but no UUID spelling has: a sign, 0x, underscores.
                "+" + "0" * 31,
                "0x" + "0" * 30,
                "0_" * 15 + "00",
            )
        ),
        hostile_text(),
    )


def _email_of_length(length: int) -> str:
    """A well-formed address of exactly ``length`` characters (at least 70)."""
    local = "a" * 64
    labels: list[str] = []
    remaining = length - len(local) - 1 - len(".com")
    while remaining > 0:
        size = min(63, remaining)
        if 0 < remaining - size < 2:
            size -= 2  # leave room for a dot and a one-letter label
        labels.append("b" * size)
        remaining -= size + 1
    return f"{local}@{'.'.join([*labels, 'com'])}"


def emails(known: Known) -> SearchStrategy[str]:
    """Valid, nearly valid and hostile addresses, at the length limits, and known ones re-cased."""
    local = st.one_of(
        st.from_regex(r"[a-z0-9._%+-]{1,20}", fullmatch=True),
        st.sampled_from(("a" * 64, "a" * 65, ".a", "a.", "a..b", '"q"', "ü", "名前")),
        hostile_text(12),
    )
    domain = st.one_of(
        st.sampled_from(
            (
                "example.com",
                "b.co",
                "bücher.example",
                "例え.テスト",
                "xn--bcher-kva.example",
                "-bad.com",
                "bad-.com",
                "a..b",
                "localhost",
                "[127.0.0.1]",
                "com",
                "ex_ample.com",
            )
        ),
        hostile_text(12),
    )
    known_email = _from(known.emails, st.just("ada@example.com"))
    plain_local = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)
    return st.one_of(
        st.emails(),
        st.builds(lambda a, b: f"{a}@{b}", local, domain),
        # Almost valid: an invisible or control character in an ordinary address's local part
        # (in the domain, the label rules refuse it anyway).
        spiked(plain_local).map(lambda a: f"{a}@example.com"),
        spiked(known_email),
        st.sampled_from((253, 254, 255)).map(_email_of_length),
        known_email,
        known_email.map(str.swapcase),
        known_email.map(lambda e: f"  {e.upper()}\t"),
        edited(known_email),
        hostile_text(),
    )


def names() -> SearchStrategy[str]:
    ordinary = st.sampled_from(("Ada", "  Ada  ", "Zoë", "李", "O'Brien", "Jean-Luc", "x"))
    return st.one_of(
        ordinary,
        spiked(ordinary),
        st.text(characters(), min_size=1, max_size=30),
        hostile_text(),
    )


def passwords(known: Known) -> SearchStrategy[str]:
    sound = _from(known.passwords, st.just(SOUND_PASSWORD))
    return st.one_of(
        sound,
        spiked(sound),
        _from(known.emails, st.just("ada@example.com")),
        st.sampled_from(("password", "12345678", "qwertyuiop", "Password1", "        ")),
        st.text(characters(), min_size=8, max_size=40),
        hostile_text(),
    )


def versions() -> SearchStrategy[int]:
    """int64 values: the usual small ones, the edges, anything."""
    edges = (0, 1, 2, 3, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63))
    return st.one_of(st.sampled_from(edges), st.integers(-(2**63), 2**63 - 1))


def page_sizes() -> SearchStrategy[int]:
    """int32 values around 0..100 and at the type's edges."""
    edges = (0, 1, 25, 99, 100, 101, -1, 2**31 - 1, -(2**31))
    return st.one_of(st.sampled_from(edges), st.integers(-(2**31), 2**31 - 1))


def _b64(raw: bytes, *, url: bool, padded: bool) -> str:
    text = (base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)).decode()
    return text if padded else text.rstrip("=")


def _signed(key: bytes, body: bytes) -> str:
    mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return _b64(body + mac, url=True, padded=False)


def page_tokens(known: Known) -> SearchStrategy[str]:
    """Issued tokens, edited ones, tokens signed with another key or in another format, junk.

    A token signed with the service's own key for a random id is as good as an issued one.
    """
    key = PAGE_TOKEN_SECRET.encode()
    ours = PageTokenCodec(key)
    theirs = PageTokenCodec(b"another-service-key-0123456789ab")
    issued = _from(known.page_tokens, st.uuids().map(lambda u: ours.encode(UserId(str(u)))))
    return st.one_of(
        st.just(""),
        issued,
        edited(issued),
        st.uuids().map(lambda u: ours.encode(UserId(str(u)))),
        st.uuids().map(lambda u: theirs.encode(UserId(str(u)))),
        st.builds(
            lambda fmt, u: _signed(key, fmt + u.bytes),
            st.sampled_from((b"\x00", b"\x02", b"\xff")),
            st.uuids(),
        ),
        st.builds(lambda u: _signed(key, b"\x01" + u.bytes + b"\x00"), st.uuids()),
        st.builds(_b64, st.binary(max_size=64), url=st.booleans(), padded=st.booleans()),
        hostile_text(),
    )


def event_page_tokens(known: Known) -> SearchStrategy[str]:
    """ListUserEvents tokens: issued, edited, for another user or sequence, signed with another
    key, ListUsers' tokens, junk."""
    key = PAGE_TOKEN_SECRET.encode()
    ours = EventPageTokenCodec(key)
    theirs = EventPageTokenCodec(b"another-service-key-0123456789ab")
    user = _from(known.user_ids, st.uuids().map(str)).map(UserId)
    sequence = st.one_of(st.sampled_from((0, 1, 2, 2**63 - 1)), st.integers(0, 2**64 - 1))
    issued = _from(known.event_page_tokens, st.builds(ours.encode, user, sequence))
    return st.one_of(
        st.just(""),
        issued,
        edited(issued),
        st.builds(ours.encode, st.uuids().map(lambda u: UserId(str(u))), sequence),
        st.builds(theirs.encode, user, sequence),
        page_tokens(known),
        hostile_text(),
    )


def cursors(known: Known) -> SearchStrategy[str]:
    """WatchEvents cursors: empty, issued, well-formed ones anywhere in time, edited, junk."""
    moment = st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    formed = st.builds(stream_key, moment, st.uuids().map(str), st.integers(0, 10**12 - 1))
    issued = _from(known.cursors, formed)
    return st.one_of(
        st.just(""),
        issued,
        edited(issued),
        spiked(issued),
        issued.map(str.upper),
        formed,
        hostile_text(),
    )


def secret_tokens(known: Known, real: Sequence[str]) -> SearchStrategy[str]:
    """Refresh or reset tokens of every length and shape: ``<uuid>.<garbage>``, edited real ones."""
    secrets_ = st.one_of(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
        st.binary(min_size=32, max_size=32).map(lambda b: _b64(b, url=True, padded=False)),
        hostile_text(),
    )
    real_token = _from(real, st.just(f"{uuid.uuid4()}.{'A' * 43}"))
    return st.one_of(
        st.builds(
            lambda user_id, dot, secret: f"{user_id}{dot}{secret}",
            user_ids(known),
            st.sampled_from((".", "..", "", " .", ".\x00")),
            secrets_,
        ),
        st.builds(
            lambda user_id, length: f"{user_id}." + "A" * (length - len(user_id) - 1),
            _from(known.user_ids, st.uuids().map(str)),
            st.sampled_from((199, 200, 201, 1024)),
        ),
        st.sampled_from(("", " ", "\t\n", ".", "..", "\x00", ".secret")),
        real_token,
        real_token.map(lambda t: f"  {t}\n"),
        edited(real_token),
        hostile_text(),
    )


def change_tokens(known: Known) -> SearchStrategy[str]:
    """Email-change tokens: ``secret_tokens`` around the real ones, and a real one's secret
    under another known user's id (a token names its user)."""
    real = known.email_change_tokens
    spliced = st.builds(
        lambda token, user_id: f"{user_id}.{token.partition('.')[2]}",
        _from(real, st.just(f"{uuid.uuid4()}.{'A' * 43}")),
        _from(known.user_ids, st.uuids().map(str)),
    )
    return st.one_of(secret_tokens(known, real), spliced)


def codes(known: Known) -> SearchStrategy[str]:
    """Verification codes: mailed ones, any 6 digits, other lengths, look-alike digits, junk."""
    mailed = _from(known.verification_codes, st.just("123456"))
    six = st.integers(0, 999_999).map(lambda n: f"{n:06d}")
    fullwidth = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    return st.one_of(
        mailed,
        mailed.map(lambda c: f" {c}\t"),
        mailed.map(lambda c: c.translate(fullwidth)),
        edited(mailed),
        six,
        st.integers(0, 10**12).map(str),
        st.sampled_from(("", " ", "-12345", "+12345", "1e5", "0x1234", "١٢٣٤٥٦", "000000")),
        hostile_text(),
    )


def recovery_codes(known: Known) -> SearchStrategy[str]:
    """Recovery codes: issued ones, in other cases and spacings, edited, of other shapes, junk."""
    issued = _from(known.recovery_codes, st.just("abcd-efgh-jkmn-pqrs"))
    return st.one_of(
        issued,
        issued.map(str.upper),
        issued.map(lambda c: c.replace("-", " ")),
        issued.map(lambda c: c.replace("-", "")),
        edited(issued),
        st.sampled_from(("", " ", "-", "iiii-llll-oooo-uuuu", "0000-0000-0000-0000")),
        hostile_text(),
    )


def id_lists(known: Known) -> SearchStrategy[list[str]]:
    """Lists of ids around the 1..100 limit: hostile ids, plausible ones (known users, unknown
    UUIDs in any spelling) with duplicates, and a few malformed ones among plausible ones."""
    plausible = st.one_of(
        _from(known.user_ids, st.uuids().map(str)),
        _from(known.user_ids, st.uuids().map(str)).map(str.upper),
        st.uuids().map(str),
    )
    mixed = st.one_of(plausible, plausible, plausible, user_ids(known))
    return st.one_of(
        st.lists(user_ids(known), max_size=12),
        st.lists(plausible, min_size=1, max_size=12),
        st.lists(mixed, min_size=1, max_size=20),
        st.sampled_from((99, 100, 101, 150)).flatmap(
            lambda size: st.lists(plausible, min_size=size, max_size=size)
        ),
        st.sampled_from((100, 101)).flatmap(
            lambda size: st.lists(mixed, min_size=size, max_size=size)
        ),
    )


PLAUSIBLE_USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15",
    "okhttp/4.12.0",
    "",
)
IP_ADDRESSES = (
    "192.0.2.1", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1", "2001:DB8::0001",
    "2001:0db8:0000:0000:0000:0000:0000:0001", "::ffff:192.0.2.1", "::FFFF:C000:0201",
    "fe80::1", "64:ff9b::192.0.2.1", "",
)  # fmt: skip
BAD_IP_ADDRESSES = (
    "256.0.0.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.4:80", "[::1]", "[::1]:443",
    "fe80::1%eth0", "fe80::1%25eth0", "192.0.2.0/24", "::1/128", "2001:db8:::1", "2001:db8::g",
    "1:2:3:4:5:6:7:8:9", " 192.0.2.1", "192.0.2.1\n", "\uff11.2.3.4", "\u0661.2.3.4",
    "localhost", "0x7f.0.0.1", "1" * 100, "::ffff:1.2.3.4.5",
)  # fmt: skip


def user_agents() -> SearchStrategy[str]:
    """Real user agents, and ones at and over 512 characters or with control characters."""
    plausible = st.sampled_from(PLAUSIBLE_USER_AGENTS)
    return st.one_of(
        plausible,
        spiked(plausible),
        st.sampled_from((511, 512, 513, 5_000)).map(lambda n: "A" * n),
        st.sampled_from((" ", "\t")).map(lambda pad: pad + "a" * 512 + pad),
        hostile_text(),
    )


def ip_addresses() -> SearchStrategy[str]:
    """IPv4 and IPv6 addresses in canonical and other forms, almost-addresses, and junk."""
    return st.one_of(
        st.sampled_from(IP_ADDRESSES),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: a.exploded.upper()),
        st.sampled_from(BAD_IP_ADDRESSES),
        edited(st.sampled_from(IP_ADDRESSES)),
        hostile_text(),
    )


def device_labels() -> SearchStrategy[str]:
    """Names people give devices, around 64 characters, and hostile text."""
    plausible = st.sampled_from(("Phone", "Ada's laptop", "  Büro-PC  ", "电话", ""))
    return st.one_of(
        plausible,
        spiked(plausible),
        st.sampled_from((63, 64, 65)).flatmap(
            lambda n: st.sampled_from(("a", "é", "中", "😀")).map(lambda unit: unit * n)
        ),
        hostile_text(),
    )


def client_details() -> SearchStrategy[pb.ClientDetails | None]:
    """Client details, hostile in every field or in one among plausible ones, or none at all."""
    hostile = {
        "user_agent": user_agents(),
        "ip_address": ip_addresses(),
        "device_label": device_labels(),
    }
    plausible = {
        "user_agent": st.sampled_from(PLAUSIBLE_USER_AGENTS),
        "ip_address": st.sampled_from(IP_ADDRESSES),
        "device_label": st.just("Phone"),
    }
    return st.one_of(st.none(), _fuzzed(pb.ClientDetails, hostile, plausible))


def plausible_client_details() -> SearchStrategy[pb.ClientDetails | None]:
    return st.one_of(
        st.none(),
        st.builds(
            pb.ClientDetails,
            user_agent=st.sampled_from(PLAUSIBLE_USER_AGENTS),
            ip_address=st.sampled_from(IP_ADDRESSES),
            device_label=st.just("Phone"),
        ),
    )


def session_ids(known: Known) -> SearchStrategy[str]:
    """The known sessions' ids (of one user; the other user's too), random UUIDs in every
    spelling, and junk."""
    return user_ids(Known((*known.session_ids, *known.other_session_ids), (), (), (), (), (), ()))


def _json_edit(raw: str, path: int, replacement: Any) -> str:
    """A credential's JSON with one value (chosen by ``path`` among its leaves and objects)
    replaced, or dropped when ``replacement`` is the marker "<drop>"."""
    document = json.loads(raw)
    slots: list[tuple[dict[str, Any], str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                slots.append((node, key))
                walk(value)

    walk(document)
    node, key = slots[path % len(slots)]
    if replacement == "<drop>":
        del node[key]
    else:
        node[key] = replacement
    return json.dumps(document)


def credential_jsons(real: Sequence[str]) -> SearchStrategy[str]:
    """A browser's PublicKeyCredential JSON: real ones, with one value replaced by junk (another
    type, hostile text, a base64url string of other bytes) or dropped, cut or edited as text,
    nested deep, and text that is no JSON at all."""
    real_json = _from(real, st.just('{"id": "AA", "rawId": "AA", "type": "public-key"}'))
    junk: SearchStrategy[Any] = st.one_of(
        st.sampled_from(("<drop>", None, 0, -1, 2**70, True, [], {}, "", "public-key", "AA")),
        hostile_text(),
        st.binary(max_size=80).map(lambda b: _b64(b, url=True, padded=False)),
    )
    return st.one_of(
        real_json,
        st.builds(_json_edit, real_json, st.integers(0, 1_000), junk),
        edited(real_json),
        st.builds(
            lambda depth, bracket: bracket * depth,
            st.sampled_from((100, 5_000, 40_000)),
            st.sampled_from(("[", '{"a":')),
        ),
        st.sampled_from(("", " ", "null", "[]", "{}", '"x"', "1e999", "NaN")),
        hostile_text(),
    )


def passkey_ids(known: Known) -> SearchStrategy[str]:
    """Passkey ids: real ones, edited ones, base64url of other lengths, and junk."""
    real = _from(known.passkey_ids, st.just("AAAAAAAAAAAAAAAAAAAAAA"))
    return st.one_of(
        real,
        edited(real),
        st.binary(max_size=1100).map(lambda b: _b64(b, url=True, padded=False)),
        st.binary(min_size=1, max_size=40).map(lambda b: _b64(b, url=False, padded=True)),
        hostile_text(),
    )


def _update_profile(user_id: str, first: str | None, last: str | None, version: int) -> Message:
    fields: dict[str, Any] = {"id": user_id, "expected_version": version}
    if first is not None:
        fields["first_name"] = first
    if last is not None:
        fields["last_name"] = last
    return pb.UpdateProfileRequest(**fields)


def _fuzzed(
    message: type[Message],
    hostile: dict[str, SearchStrategy[Any]],
    plausible: dict[str, SearchStrategy[Any]],
) -> SearchStrategy[Message]:
    """Every field hostile at once, or one hostile field among plausible ones, so that field's
    own checks decide the answer."""

    def one_hostile(field: str) -> SearchStrategy[Message]:
        return st.builds(message, **{**plausible, field: hostile[field]})

    one = st.sampled_from(sorted(hostile)).flatmap(one_hostile)
    return st.one_of(st.builds(message, **hostile), one, one)  # one hostile field: 2 in 3


def requests(known: Known) -> dict[str, SearchStrategy[Message]]:
    """A strategy of hostile requests for every UserService RPC, by method name."""
    ids = user_ids(known)
    email = emails(known)
    password = passwords(known)
    # What gets past validation: an existing user, a version it may have, its credentials.
    known_id = _from(known.user_ids, st.uuids().map(str))
    known_email = _from(known.emails, st.just("ada@example.com"))
    known_password = _from(known.passwords, st.just(SOUND_PASSWORD))
    known_session = _from(known.session_ids, st.uuids().map(str))
    fresh_email = st.uuids().map(lambda u: f"fuzz-{u.hex[:16]}@example.com")
    recent_version = st.integers(1, 4)
    maybe_name = st.one_of(st.none(), names())
    totp_id = _from(known.totp_user_ids, known_id)
    # Challenges, edited, spliced onto another user, and tokens of other kinds.
    challenge_tokens = st.one_of(
        secret_tokens(known, (*known.challenge_tokens, *known.reset_tokens, *known.refresh_tokens)),
        st.builds(
            lambda token, user_id: f"{user_id}.{token.partition('.')[2]}",
            _from(known.challenge_tokens, st.just(f"{uuid.uuid4()}.{'A' * 43}")),
            _from(known.user_ids, st.uuids().map(str)),
        ),
    )
    return {
        "RegisterUser": _fuzzed(
            pb.RegisterUserRequest,
            {
                "email": email,
                "password": password,
                "first_name": names(),
                "last_name": names(),
                # Vouching for the address (the caller is an admin in development).
                "email_verified": st.booleans(),
            },
            {
                "email": fresh_email,
                "password": st.just(SOUND_PASSWORD),
                "first_name": st.just("Ada"),
                "last_name": st.just("Byron"),
                "email_verified": st.booleans(),
            },
        ),
        "GetUser": st.builds(pb.GetUserRequest, id=ids),
        "GetUserByEmail": st.builds(pb.GetUserByEmailRequest, email=email),
        "BatchGetUsers": st.builds(pb.BatchGetUsersRequest, ids=id_lists(known)),
        "UpdateProfile": st.one_of(
            st.builds(_update_profile, ids, maybe_name, maybe_name, versions()),
            st.builds(_update_profile, known_id, names(), maybe_name, recent_version),
        ),
        "ListUsers": _fuzzed(
            pb.ListUsersRequest,
            {"page_size": page_sizes(), "page_token": page_tokens(known)},
            {"page_size": st.integers(0, 100), "page_token": _from(known.page_tokens, st.just(""))},
        ),
        "DeleteUser": _fuzzed(
            pb.DeleteUserRequest,
            {"id": ids, "expected_version": versions()},
            {"id": known_id, "expected_version": recent_version},
        ),
        "Authenticate": _fuzzed(
            pb.AuthenticateRequest,
            {"email": email, "password": password, "client": client_details()},
            {
                "email": known_email,
                "password": known_password,
                "client": plausible_client_details(),
            },
        ),
        "RefreshSession": st.builds(
            pb.RefreshSessionRequest, refresh_token=secret_tokens(known, known.refresh_tokens)
        ),
        "Logout": st.builds(
            pb.LogoutRequest, refresh_token=secret_tokens(known, known.refresh_tokens)
        ),
        "LogoutAll": st.builds(pb.LogoutAllRequest, user_id=ids),
        "ListSessions": st.builds(pb.ListSessionsRequest, user_id=ids),
        "EndSession": _fuzzed(
            pb.EndSessionRequest,
            {"user_id": ids, "session_id": session_ids(known)},
            {
                "user_id": known_id,
                "session_id": st.one_of(
                    known_session, _from(known.other_session_ids, known_session)
                ),
            },
        ),
        "ChangePassword": _fuzzed(
            pb.ChangePasswordRequest,
            {
                "user_id": ids,
                "current_password": password,
                "new_password": password,
                "keep_session_id": st.one_of(known_session, hostile_text()),
            },
            {
                "user_id": known_id,
                "current_password": known_password,
                "new_password": st.just(SOUND_NEW_PASSWORD),
                "keep_session_id": known_session,
            },
        ),
        "RequestPasswordReset": st.builds(pb.RequestPasswordResetRequest, email=email),
        "ResetPassword": _fuzzed(
            pb.ResetPasswordRequest,
            {
                "reset_token": secret_tokens(known, known.reset_tokens),
                "new_password": password,
            },
            {
                "reset_token": _from(known.reset_tokens, st.just("")),
                "new_password": st.just(SOUND_NEW_PASSWORD),
            },
        ),
        "VerifyEmail": st.one_of(
            # The link's token alone: every length and shape, reset and refresh tokens too.
            st.builds(
                pb.VerifyEmailRequest,
                token=secret_tokens(
                    known,
                    (*known.verification_tokens, *known.reset_tokens, *known.refresh_tokens),
                ),
            ),
            # The address and the code.
            _fuzzed(
                pb.VerifyEmailRequest,
                {"email": email, "code": codes(known)},
                {
                    "email": _from(known.unverified_emails, known_email),
                    "code": _from(known.verification_codes, st.just("123456")),
                },
            ),
            # Every field at once, the two ways mixed.
            st.builds(
                pb.VerifyEmailRequest,
                token=secret_tokens(known, known.verification_tokens),
                email=email,
                code=codes(known),
            ),
        ),
        "ResendVerification": st.builds(
            pb.ResendVerificationRequest,
            email=st.one_of(email, _from(known.unverified_emails, known_email)),
        ),
        "DisableUser": st.builds(pb.DisableUserRequest, id=ids),
        "EnableUser": st.builds(pb.EnableUserRequest, id=ids),
        "GetJwks": st.just(pb.GetJwksRequest()),
        "ListUserEvents": _fuzzed(
            pb.ListUserEventsRequest,
            {"user_id": ids, "page_size": page_sizes(), "page_token": event_page_tokens(known)},
            {
                "user_id": known_id,
                "page_size": st.integers(0, 100),
                "page_token": _from(known.event_page_tokens, st.just("")),
            },
        ),
        "WatchEvents": st.builds(pb.WatchEventsRequest, after_cursor=cursors(known)),
        "RequestEmailChange": _fuzzed(
            pb.RequestEmailChangeRequest,
            {"id": ids, "new_email": email, "expected_version": versions()},
            {"id": known_id, "new_email": fresh_email, "expected_version": recent_version},
        ),
        # Real tokens (confirm and cancel, each given to both RPCs), edited, spliced onto
        # another user, of every length; a real one may land once, then it is used.
        "ConfirmEmailChange": st.builds(pb.ConfirmEmailChangeRequest, token=change_tokens(known)),
        "CancelEmailChange": st.builds(pb.CancelEmailChangeRequest, token=change_tokens(known)),
        "CompleteSignIn": st.one_of(
            *(
                _fuzzed(
                    pb.CompleteSignInRequest,
                    {
                        "challenge_token": challenge_tokens,
                        proof: hostile_proof,
                        "client": client_details(),
                    },
                    {
                        "challenge_token": _from(known.challenge_tokens, st.just("")),
                        proof: plausible_proof,
                        "client": plausible_client_details(),
                    },
                )
                for proof, hostile_proof, plausible_proof in (
                    ("totp_code", codes(known), st.integers(0, 999_999).map(lambda n: f"{n:06d}")),
                    (
                        "recovery_code",
                        recovery_codes(known),
                        _from(known.recovery_codes, st.just("")),
                    ),
                    (
                        "passkey_credential_json",
                        credential_jsons(known.passkey_assertions),
                        _from(known.passkey_assertions, st.just("{}")),
                    ),
                )
            ),
            # No proof at all.
            st.builds(pb.CompleteSignInRequest, challenge_token=challenge_tokens),
        ),
        "ChangeEmail": _fuzzed(
            pb.ChangeEmailRequest,
            {"id": ids, "email": email, "expected_version": versions()},
            {"id": known_id, "email": fresh_email, "expected_version": recent_version},
        ),
        "BeginTotpEnrollment": st.builds(pb.BeginTotpEnrollmentRequest, user_id=ids),
        "ConfirmTotpEnrollment": _fuzzed(
            pb.ConfirmTotpEnrollmentRequest,
            {"user_id": ids, "code": codes(known)},
            {"user_id": known_id, "code": st.integers(0, 999_999).map(lambda n: f"{n:06d}")},
        ),
        "DisableTotp": st.one_of(
            st.builds(
                pb.DisableTotpRequest, user_id=st.one_of(ids, totp_id), totp_code=codes(known)
            ),
            st.builds(
                pb.DisableTotpRequest,
                user_id=st.one_of(ids, totp_id),
                recovery_code=recovery_codes(known),
            ),
            st.builds(pb.DisableTotpRequest, user_id=ids, without_code=st.booleans()),
        ),
        "RegenerateRecoveryCodes": _fuzzed(
            pb.RegenerateRecoveryCodesRequest,
            {"user_id": ids, "totp_code": codes(known)},
            {"user_id": totp_id, "totp_code": st.integers(0, 999_999).map(lambda n: f"{n:06d}")},
        ),
        "ResetSecondFactors": st.builds(pb.ResetSecondFactorsRequest, user_id=ids),
        "BeginPasskeyRegistration": st.builds(pb.BeginPasskeyRegistrationRequest, user_id=ids),
        "FinishPasskeyRegistration": _fuzzed(
            pb.FinishPasskeyRegistrationRequest,
            {
                "user_id": ids,
                "credential_json": credential_jsons(
                    (*known.passkey_registrations, *known.passkey_assertions)
                ),
                "name": hostile_text(),
            },
            {
                "user_id": _from(known.passkey_user_ids, known_id),
                "credential_json": _from(known.passkey_registrations, st.just("{}")),
                "name": st.just("Laptop"),
            },
        ),
        "ListPasskeys": st.builds(
            pb.ListPasskeysRequest, user_id=st.one_of(ids, _from(known.passkey_user_ids, ids))
        ),
        "RemovePasskey": _fuzzed(
            pb.RemovePasskeyRequest,
            {"user_id": ids, "passkey_id": passkey_ids(known)},
            {
                "user_id": _from(known.passkey_user_ids, known_id),
                "passkey_id": _from(known.passkey_ids, st.just("AAAA")),
            },
        ),
        "BeginPasskeySignIn": st.just(pb.BeginPasskeySignInRequest()),
        "FinishPasskeySignIn": _fuzzed(
            pb.FinishPasskeySignInRequest,
            {
                "ceremony_token": st.one_of(
                    edited(_from(known.ceremony_tokens, st.just("AAAA"))),
                    secret_tokens(known, known.ceremony_tokens),
                ),
                "credential_json": credential_jsons(
                    (*known.passkey_assertions, *known.passkey_registrations)
                ),
                "client": client_details(),
            },
            {
                "ceremony_token": _from(known.ceremony_tokens, st.just("AAAA")),
                "credential_json": _from(known.passkey_assertions, st.just("{}")),
                "client": plausible_client_details(),
            },
        ),
    }
