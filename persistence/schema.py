"""The DynamoDB tables of the user service, their keys and indexes: the storage contract.

Table ``Users`` (name configurable) holds one item per user and nothing else, so a Scan page
reads only users:
  Id                 S  partition key, canonical UUID string
  Email              S  display form of the address
  EmailIndex         S  normalized (case-folded) email; hash key of GSI ``EmailIndex``
  FirstName, LastName, PasswordHash, Status   S
  Version            N  the version callers see: 1 once added, +1 per write that moves UpdatedAt
  Revision           N  1 once added, +1 per write of any kind; every update and delete is
                        conditional on it (optimistic locking)
  CreatedAt, UpdatedAt  S  ISO-8601 UTC with microseconds: 2024-05-01T12:00:00.000000+00:00
  SessionEpoch       N  the user's session epoch (0 when absent): only the sessions whose key
                        carries it are live; moved on to end every session at once
  Sessions           L  of M: schema version 2 only, the sessions held in the user item; read
                        as sessions of epoch 0 and moved to the sessions table by the user's
                        next write (or by ``user-service migrate``); never written by version 3
  FailedLogins       N  failed sign-ins in a row since the last success (attempts refused
                        during a delay included); absent while it and FailedGuesses are 0
  LockedUntil        S  until when sign-in is refused (the current delay); absent when never
                        (items written before growing delays may hold FailuresStartedAt, unread)
  PasswordReset      M  {TokenHash, RequestedAt, ExpiresAt}; absent when none is pending
  EmailVerified      BOOL  true once the address is verified; absent: not verified
  EmailVerifiedAt    S  when it was verified; absent while it is not
  EmailVerification  M  {Email (normalized, the address it was mailed to), TokenHash, CodeHash,
                        CodeSalt, RequestedAt, ExpiresAt, WrongCodes}: the pending verification;
                        the code only as HMAC-SHA-256 under its own random salt; absent when
                        none is pending
  PendingEmailChange M  {NewEmail, ConfirmTokenHash, CancelTokenHash, RequestedAt, ExpiresAt}:
                        a move to NewEmail asked and not yet confirmed; absent when none
  RefreshTokenIndex  S  no longer written (hash key of GSI ``RefreshTokenIndex``, which stays
                        empty: sparse); items written before still carry it until their next
                        write, and it is ignored on read
  EventSeq           N  how many domain events have been recorded for this user: the sequence
                        number of the last one in the events table (0: none yet)
  WriteId            S  a random id set by a write sent as a single PutItem, to recognise
                        itself when retried (persistence.single_write); ignored on read
  Totp               M  {Secret, ConfirmedAt, LastStep}: the confirmed TOTP factor. Secret is
                        the TOTP secret sealed with AES-256-GCM, ``<key id>:<base64url of nonce,
                        ciphertext and tag>`` (server.crypto.totp_keys), never in clear;
                        LastStep (N) is the last 30-second step a code was accepted at (the
                        confirming code's, at first): codes of that step or earlier are
                        refused. Absent while TOTP is off
  PendingTotp        M  {Secret (sealed as above), BegunAt, ExpiresAt}: an enrollment begun and
                        not yet confirmed; absent when none
  RecoveryCodes      B  the unused recovery codes, each only as the first 128 bits of
                        SHA-256("<user id>:<normalized code>"), 16 bytes each, one after the
                        other (ten: 160 bytes; the codes carry 80 random bits each: see
                        domain.second_factors); absent when none remain
  SignInChallenges   L  of M {TokenHash (B, the SHA-256 of the single-use token, never the token),
                        ExpiresAt (N, epoch seconds), WebAuthn (B, 32 random bytes a passkey
                        signs; empty for a user without passkeys), WrongCodes (N, absent
                        while 0)}: sign-ins whose password was right, waiting on a second
                        factor (CompleteSignIn); at most 4, expired ones dropped by the next
                        write of them; about 70 bytes each, 100 with passkeys; absent
                        when none
  Passkeys           L  of M {Id (the WebAuthn credential id, base64url), PublicKey (its COSE
                        key, base64url; not a secret), SignCount N, Name, CreatedAt, LastUsedAt
                        (absent until used), Transports (comma-separated hints; absent when
                        none), Backup N (bit 0: backup eligible, bit 1: backed up)}: the user's
                        passkeys, oldest first, at most 10; absent when none. Each adds about
                        300 bytes with a 16-byte credential id (a P-256 key is 77 bytes of COSE)
  PasskeyRegistration M {Challenge (base64url; a public nonce), ExpiresAt}: a passkey
                        registration begun and not yet finished (about 120 bytes); absent when none
  PasskeySignIns     M  {<digest>: ExpiresAt}: the passwordless sign-in challenges spent lately,
                        each as 16 bytes of its SHA-256 (base64url), until its ceremony expires
                        (5 min): a second use is refused; pruned at the next sign-in, at most 32
                        (about 70 bytes each)
  SchemaVersion      N  5 (see persistence.item_upgrades for the versions and how older items
                        are read)
Every token is stored only as the hex SHA-256 of the token. Both GSIs keep the seed's names and
keys and project KEYS_ONLY (tables created before projected ALL; DynamoDB cannot change a
projection in place). They are eventually consistent, so no decision is taken on them: email
lookups go through the guard table; a reset token carries its user's id and a refresh token its
user's and its session's, found by consistent GetItems by key, then compared in constant time
against the stored hashes.
What they cost is why they are lean. DynamoDB writes an index whenever a write touches an
attribute it projects, and deletes and re-inserts the entry when its key changes
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations).
Projecting ALL, EmailIndex took a full copy of the user on every write; KEYS_ONLY, it is
written only when a user is added, deleted or changes email. RefreshTokenIndex's key changed on
every sign-in and refresh; nothing reads it, so its key is no longer written.

Table ``UserEmails`` (name configurable) is the email uniqueness guard, one item per normalized
email, written in the same TransactWriteItems as the user with ``attribute_not_exists(Email)``:
  Email              S  partition key, normalized email
  UserId             S  id of the user who owns it

Table ``UserEvents`` (name configurable) is the outbox of domain events (domain.events), one item
per event, written in the same TransactWriteItems as the change that caused it, with
``attribute_not_exists(Seq)``:
  UserId             S  partition key: the user the event is about
  Seq                N  sort key: the event's per-user sequence number 1, 2, 3, ... without gaps
                        (the user item's EventSeq is the last one)
  Type               S  the event's name: UserRegistered, SessionRevoked, ...
  OccurredAt         S  when it happened (the domain's clock), ISO-8601 UTC as above
  Data               S  a JSON object of the event's own fields (snake_case names; times as
                        ISO-8601 strings); never a password, a token or a hash of either
  RecordedAt         S  when the write carrying it was made (the service's clock)
  StreamDay          S  the UTC day of RecordedAt and the user's stream shard: 2024-05-01 for shard
                        0 (and every event written before shards), 2024-05-01#3 for shard 3
                        (domain.event_cursors.stream_partition): hash key of GSI ``EventStream``
  StreamKey          S  ``<RecordedAt>#<UserId>#<Seq, 12 digits>``: range key of ``EventStream``,
                        the order of the service-wide stream and the cursor of WatchEvents
  ExpiresAt          N  epoch seconds after which DynamoDB's TTL deletes the event
  SchemaVersion      N  1
Table ``UserSessions`` (name configurable) holds one item per session, so that reading or rotating
one costs the same however many its user holds, and ending them all is one write of the user item
(its SessionEpoch moves on):
  UserId             S  partition key: the session's user
  SessionKey         S  sort key: ``<epoch, 10 digits>#<SessionId>``; a Query with
                        ``begins_with(SessionKey, "<epoch>#")`` reads the user's current sessions
  SessionId          S  the session's id (a refresh token's middle part, an access token's sid)
  TokenHash          S  the current refresh token's hash
  PreviousTokenHash, RotatedAt   S  after a rotation: the token it replaced, and when
  RetiredTokenHashes L  of S: the last few tokens exchanged before that (reuse detection)
  CreatedAt, ExpiresAt, LastUsedAt   S  ISO-8601 UTC: opened, absolute end, last refresh
  UserAgent, IpAddress, DeviceLabel   S  the client details given at sign-in, each only when
                        given: a user agent (<= 512 printable), an IP address (canonical form),
                        a device label (<= 64 printable); kept across refreshes
  Amr                L  of S: how the sign-in was proven, RFC 8176 values (["pwd"], ["pwd", "otp"],
                        ...), the access tokens' amr claim; kept across refreshes; absent on
                        items written before it: ["pwd"]
  ExpireAt           N  epoch seconds: min(ExpiresAt, LastUsedAt + idle lifetime), the table's TTL
                        attribute: DynamoDB deletes the item some time after (free); sessions of
                        an earlier epoch are left to it
  WriteId            S  set by a write sent as a single PutItem (persistence.single_write)
No index. Items of a session that ended with its epoch are never read again.

``EventStream`` projects ALL and is eventually consistent: the stream is read with a settle delay
(see server.event_stream), each day's shards merged by StreamKey (server.stream_reader); the
per-user list is read from the table itself, consistently.

Every table bills PAY_PER_REQUEST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EMAIL_INDEX = "EmailIndex"
REFRESH_TOKEN_INDEX = "RefreshTokenIndex"
EVENT_STREAM_INDEX = "EventStream"
EVENTS_TTL_ATTRIBUTE = "ExpiresAt"
SESSIONS_TTL_ATTRIBUTE = "ExpireAt"
SCHEMA_VERSION = 5
EVENT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TableNames:
    """Names of the users, email-guard, events and sessions tables (configurable per
    environment)."""

    users: str = "Users"
    emails: str = "UserEmails"
    events: str = "UserEvents"
    sessions: str = "UserSessions"


def _global_index(name: str) -> dict[str, Any]:
    # Each index is keyed on the attribute of the same name and holds only the keys.
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": name, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


USERS_GLOBAL_INDEXES: dict[str, dict[str, Any]] = {
    name: _global_index(name) for name in (EMAIL_INDEX, REFRESH_TOKEN_INDEX)
}


def users_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the users table, with both GSIs."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in ("Id", EMAIL_INDEX, REFRESH_TOKEN_INDEX)
        ],
        "GlobalSecondaryIndexes": list(USERS_GLOBAL_INDEXES.values()),
        "BillingMode": "PAY_PER_REQUEST",
    }


def emails_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the email-guard table."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "Email", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "Email", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


def events_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the events table, with its stream index."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "UserId", "KeyType": "HASH"},
            {"AttributeName": "Seq", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "UserId", "AttributeType": "S"},
            {"AttributeName": "Seq", "AttributeType": "N"},
            {"AttributeName": "StreamDay", "AttributeType": "S"},
            {"AttributeName": "StreamKey", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": EVENT_STREAM_INDEX,
                "KeySchema": [
                    {"AttributeName": "StreamDay", "KeyType": "HASH"},
                    {"AttributeName": "StreamKey", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def sessions_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the sessions table (no index)."""
    return {
        "TableName": name,
        "KeySchema": [
            {"AttributeName": "UserId", "KeyType": "HASH"},
            {"AttributeName": "SessionKey", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "UserId", "AttributeType": "S"},
            {"AttributeName": "SessionKey", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def session_key(epoch: int, session_id: str) -> str:
    """The sort key of a session in the sessions table."""
    return f"{session_prefix(epoch)}{session_id}"


def session_prefix(epoch: int) -> str:
    """What every sort key of the sessions of ``epoch`` begins with."""
    return f"{epoch:010d}#"
