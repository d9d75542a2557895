"""A Python client of user-service: ``connect()`` for a configured, typed client, typed errors
decoded from the status details, and an access-token verifier fetching the service's JWKS."""

from __future__ import annotations

from user_service_client._proto import user_service_pb2 as pb
from user_service_client.channel import UserServiceClient, connect, service_config, user_token
from user_service_client.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    UserServiceError,
    typed_error,
)
from user_service_client.tokens import (
    AccessTokenClaims,
    AccessTokenVerifier,
    InvalidAccessToken,
    JwksUnavailable,
    jwks_url,
)

__all__ = [
    "Aborted",
    "AccessTokenClaims",
    "AccessTokenVerifier",
    "AlreadyExists",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidAccessToken",
    "InvalidArgument",
    "JwksUnavailable",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "UserServiceClient",
    "UserServiceError",
    "connect",
    "jwks_url",
    "pb",
    "service_config",
    "typed_error",
    "user_token",
]
