"""The UserService RPCs: each turns its request into a use case call and the result into a reply."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc.aio import ServicerContext as Context

from domain.pagination import EventPageTokenCodec, PageTokenCodec
from domain.passkeys import SignInCeremonyCodec, WebAuthn
from domain.policies import AuthPolicy
from domain.ports import (
    AccessTokenIssuer,
    Clock,
    EventLog,
    LegacyAuthenticator,
    LockNotices,
    Notifier,
    PasswordHasher,
    SecondFactorNotices,
    TaskRunner,
    TotpCodes,
    UnitOfWorkFactory,
    VerificationMailing,
)
from domain.use_cases import (
    accounts,
    email_change,
    events,
    passkeys,
    passwords,
    second_factor_sign_in,
    second_factors,
    sessions,
    verification,
)
from domain.values import Requester
from server.crypto.totp_keys import qr_code_svg
from server.event_stream import EventStreams
from server.interceptors.caller_auth import on_own_user_token
from server.pb_mapping import (
    authenticated_to_pb,
    email_change_requested_to_pb,
    event_to_pb,
    jwks_to_pb,
    lookups_to_pb,
    passkey_registration_to_pb,
    passkey_sign_in_to_pb,
    passkey_to_pb,
    passkeys_to_pb,
    proof_from_pb,
    recovery_codes_to_pb,
    refreshed_to_pb,
    sessions_to_pb,
    signed_in_to_pb,
    totp_confirmed_to_pb,
    totp_enrollment_to_pb,
    user_events_page_to_pb,
    user_to_pb,
    users_page_to_pb,
)

Jwks = Callable[[], list[dict[str, str]]]


class UserServiceServicer(user_service_pb2_grpc.UserServiceServicer):
    """Thin adapter from gRPC to domain.use_cases; domain errors are mapped by server.status."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        page_tokens: PageTokenCodec,
        issuer: AccessTokenIssuer,
        jwks: Jwks,
        notifier: Notifier,
        policy: AuthPolicy,
        later: TaskRunner,
        event_log: EventLog,
        event_page_tokens: EventPageTokenCodec,
        event_streams: EventStreams,
        totp_codes: TotpCodes | None = None,
        webauthn: WebAuthn,
        passkey_ceremonies: SignInCeremonyCodec,
        legacy: LegacyAuthenticator | None = None,
    ) -> None:
        self._uow = uow_factory
        self._hasher = hasher
        self._clock = clock
        self._page_tokens = page_tokens
        self._issuer = issuer
        self._jwks = jwks
        self._notifier = notifier
        self._policy = policy
        self._later = later
        self._lock_notices = LockNotices(notifier, later)
        self._verification_mailing = VerificationMailing(notifier, later)
        self._event_log = event_log
        self._event_page_tokens = event_page_tokens
        self._event_streams = event_streams
        self._second_factors = second_factors.SecondFactorDeps(
            codes=totp_codes,
            lock_notices=self._lock_notices,
            notices=SecondFactorNotices(notifier, later),
        )
        self._webauthn = webauthn
        self._passkey_ceremonies = passkey_ceremonies
        self._legacy = legacy

    async def RegisterUser(
        self, request: pb.RegisterUserRequest, context: Context[pb.RegisterUserRequest, pb.User]
    ) -> pb.User:
        # Who may set email_verified is server.rpc_access's to say; the caller passed it.
        user = await accounts.register_user(
            self._uow(),
            self._hasher,
            self._clock,
            self._policy,
            self._verification_mailing,
            email=request.email,
            password=request.password,
            first_name=request.first_name,
            last_name=request.last_name,
            email_verified=request.email_verified,
        )
        return user_to_pb(user)

    async def GetUser(
        self, request: pb.GetUserRequest, context: Context[pb.GetUserRequest, pb.User]
    ) -> pb.User:
        return user_to_pb(await accounts.get_user(self._uow(), user_id=request.id))

    async def GetUserByEmail(
        self, request: pb.GetUserByEmailRequest, context: Context[pb.GetUserByEmailRequest, pb.User]
    ) -> pb.User:
        return user_to_pb(await accounts.get_user_by_email(self._uow(), email=request.email))

    async def BatchGetUsers(
        self,
        request: pb.BatchGetUsersRequest,
        context: Context[pb.BatchGetUsersRequest, pb.BatchGetUsersResponse],
    ) -> pb.BatchGetUsersResponse:
        return lookups_to_pb(await accounts.batch_get_users(self._uow(), ids=request.ids))

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Context[pb.UpdateProfileRequest, pb.User]
    ) -> pb.User:
        user = await accounts.update_profile(
            self._uow(),
            self._clock,
            user_id=request.id,
            first_name=request.first_name if request.HasField("first_name") else None,
            last_name=request.last_name if request.HasField("last_name") else None,
            expected_version=request.expected_version,
        )
        return user_to_pb(user)

    async def ListUsers(
        self,
        request: pb.ListUsersRequest,
        context: Context[pb.ListUsersRequest, pb.ListUsersResponse],
    ) -> pb.ListUsersResponse:
        page = await accounts.list_users(
            self._uow(),
            self._page_tokens,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return users_page_to_pb(page)

    async def DeleteUser(
        self,
        request: pb.DeleteUserRequest,
        context: Context[pb.DeleteUserRequest, pb.DeleteUserResponse],
    ) -> pb.DeleteUserResponse:
        await accounts.delete_user(
            self._uow(), self._clock, user_id=request.id, expected_version=request.expected_version
        )
        return pb.DeleteUserResponse()

    async def Authenticate(
        self,
        request: pb.AuthenticateRequest,
        context: Context[pb.AuthenticateRequest, pb.AuthenticateResponse],
    ) -> pb.AuthenticateResponse:
        tokens = await sessions.authenticate(
            self._uow(),
            self._hasher,
            self._issuer,
            self._clock,
            self._policy,
            self._lock_notices,
            email=request.email,
            password=request.password,
            user_agent=request.client.user_agent,
            ip_address=request.client.ip_address,
            device_label=request.client.device_label,
            legacy=self._legacy,
        )
        return signed_in_to_pb(tokens, passkeys.second_factor_options(self._webauthn, tokens))

    async def RefreshSession(
        self,
        request: pb.RefreshSessionRequest,
        context: Context[pb.RefreshSessionRequest, pb.RefreshSessionResponse],
    ) -> pb.RefreshSessionResponse:
        tokens = await sessions.refresh_session(
            self._uow(),
            self._issuer,
            self._clock,
            self._policy,
            refresh_token=request.refresh_token,
        )
        return refreshed_to_pb(tokens)

    async def Logout(
        self, request: pb.LogoutRequest, context: Context[pb.LogoutRequest, pb.LogoutResponse]
    ) -> pb.LogoutResponse:
        await sessions.logout(self._uow(), self._clock, refresh_token=request.refresh_token)
        return pb.LogoutResponse()

    async def LogoutAll(
        self,
        request: pb.LogoutAllRequest,
        context: Context[pb.LogoutAllRequest, pb.LogoutAllResponse],
    ) -> pb.LogoutAllResponse:
        ended = await sessions.logout_all(
            self._uow(), self._clock, self._policy.sessions, user_id=request.user_id
        )
        return pb.LogoutAllResponse(sessions_ended=ended)

    async def ListSessions(
        self,
        request: pb.ListSessionsRequest,
        context: Context[pb.ListSessionsRequest, pb.ListSessionsResponse],
    ) -> pb.ListSessionsResponse:
        listed = await sessions.list_sessions(
            self._uow(), self._clock, self._policy.sessions, user_id=request.user_id
        )
        return sessions_to_pb(listed)

    async def EndSession(
        self,
        request: pb.EndSessionRequest,
        context: Context[pb.EndSessionRequest, pb.EndSessionResponse],
    ) -> pb.EndSessionResponse:
        await sessions.end_session(
            self._uow(),
            self._clock,
            self._policy.sessions,
            user_id=request.user_id,
            session_id=request.session_id,
            by=Requester.USER if on_own_user_token.get() else Requester.ADMIN,
        )
        return pb.EndSessionResponse()

    async def ChangePassword(
        self,
        request: pb.ChangePasswordRequest,
        context: Context[pb.ChangePasswordRequest, pb.ChangePasswordResponse],
    ) -> pb.ChangePasswordResponse:
        await passwords.change_password(
            self._uow(),
            self._hasher,
            self._clock,
            self._policy,
            self._lock_notices,
            user_id=request.user_id,
            current_password=request.current_password,
            new_password=request.new_password,
            keep_session_id=request.keep_session_id,
        )
        return pb.ChangePasswordResponse()

    async def RequestPasswordReset(
        self,
        request: pb.RequestPasswordResetRequest,
        context: Context[pb.RequestPasswordResetRequest, pb.RequestPasswordResetResponse],
    ) -> pb.RequestPasswordResetResponse:
        await passwords.request_password_reset(
            self._uow(),
            self._notifier,
            self._clock,
            self._policy,
            self._later,
            email=request.email,
            legacy=None if self._legacy is None else (self._legacy, self._hasher),
        )
        return pb.RequestPasswordResetResponse()

    async def ResetPassword(
        self,
        request: pb.ResetPasswordRequest,
        context: Context[pb.ResetPasswordRequest, pb.ResetPasswordResponse],
    ) -> pb.ResetPasswordResponse:
        await passwords.reset_password(
            self._uow(),
            self._hasher,
            self._clock,
            self._policy.sessions,
            reset_token=request.reset_token,
            new_password=request.new_password,
        )
        return pb.ResetPasswordResponse()

    async def VerifyEmail(
        self, request: pb.VerifyEmailRequest, context: Context[pb.VerifyEmailRequest, pb.User]
    ) -> pb.User:
        user = await verification.verify_email(
            self._uow(),
            self._clock,
            self._policy.verification,
            token=request.token,
            email=request.email,
            code=request.code,
        )
        return user_to_pb(user)

    async def ResendVerification(
        self,
        request: pb.ResendVerificationRequest,
        context: Context[pb.ResendVerificationRequest, pb.ResendVerificationResponse],
    ) -> pb.ResendVerificationResponse:
        await verification.resend_verification(
            self._uow(),
            self._clock,
            self._policy,
            self._verification_mailing,
            email=request.email,
        )
        return pb.ResendVerificationResponse()

    async def DisableUser(
        self, request: pb.DisableUserRequest, context: Context[pb.DisableUserRequest, pb.User]
    ) -> pb.User:
        disabled = await accounts.disable_user(
            self._uow(), self._clock, self._policy.sessions, user_id=request.id
        )
        return user_to_pb(disabled)

    async def EnableUser(
        self, request: pb.EnableUserRequest, context: Context[pb.EnableUserRequest, pb.User]
    ) -> pb.User:
        return user_to_pb(await accounts.enable_user(self._uow(), self._clock, user_id=request.id))

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: Context[pb.GetJwksRequest, pb.GetJwksResponse]
    ) -> pb.GetJwksResponse:
        return jwks_to_pb(self._jwks())

    async def ListUserEvents(
        self,
        request: pb.ListUserEventsRequest,
        context: Context[pb.ListUserEventsRequest, pb.ListUserEventsResponse],
    ) -> pb.ListUserEventsResponse:
        page = await events.list_user_events(
            self._event_log,
            self._event_page_tokens,
            user_id=request.user_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return user_events_page_to_pb(page)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context[pb.WatchEventsRequest, pb.UserEvent]
    ) -> AsyncIterator[pb.UserEvent]:
        after = events.watch_position(after_cursor=request.after_cursor)
        async for event in self._event_streams.follow(after):
            yield event_to_pb(event)

    async def RequestEmailChange(
        self,
        request: pb.RequestEmailChangeRequest,
        context: Context[pb.RequestEmailChangeRequest, pb.RequestEmailChangeResponse],
    ) -> pb.RequestEmailChangeResponse:
        expires_at = await email_change.request_email_change(
            self._uow(),
            self._notifier,
            self._clock,
            self._policy,
            self._later,
            user_id=request.id,
            new_email=request.new_email,
            expected_version=request.expected_version,
        )
        return email_change_requested_to_pb(expires_at)

    async def ConfirmEmailChange(
        self,
        request: pb.ConfirmEmailChangeRequest,
        context: Context[pb.ConfirmEmailChangeRequest, pb.User],
    ) -> pb.User:
        user = await email_change.confirm_email_change(
            self._uow(), self._clock, token=request.token
        )
        return user_to_pb(user)

    async def CancelEmailChange(
        self,
        request: pb.CancelEmailChangeRequest,
        context: Context[pb.CancelEmailChangeRequest, pb.CancelEmailChangeResponse],
    ) -> pb.CancelEmailChangeResponse:
        await email_change.cancel_email_change(self._uow(), self._clock, token=request.token)
        return pb.CancelEmailChangeResponse()

    async def ChangeEmail(
        self, request: pb.ChangeEmailRequest, context: Context[pb.ChangeEmailRequest, pb.User]
    ) -> pb.User:
        user = await email_change.change_email(
            self._uow(),
            self._clock,
            user_id=request.id,
            email=request.email,
            expected_version=request.expected_version,
        )
        return user_to_pb(user)

    async def BeginTotpEnrollment(
        self,
        request: pb.BeginTotpEnrollmentRequest,
        context: Context[pb.BeginTotpEnrollmentRequest, pb.BeginTotpEnrollmentResponse],
    ) -> pb.BeginTotpEnrollmentResponse:
        enrollment = await second_factors.begin_totp_enrollment(
            self._uow(), self._clock, self._second_factors, user_id=request.user_id
        )
        return totp_enrollment_to_pb(enrollment, qr_code_svg(enrollment.uri))

    async def ConfirmTotpEnrollment(
        self,
        request: pb.ConfirmTotpEnrollmentRequest,
        context: Context[pb.ConfirmTotpEnrollmentRequest, pb.ConfirmTotpEnrollmentResponse],
    ) -> pb.ConfirmTotpEnrollmentResponse:
        confirmed = await second_factors.confirm_totp_enrollment(
            self._uow(),
            self._clock,
            self._second_factors,
            user_id=request.user_id,
            code=request.code,
        )
        return totp_confirmed_to_pb(confirmed)

    async def DisableTotp(
        self, request: pb.DisableTotpRequest, context: Context[pb.DisableTotpRequest, pb.User]
    ) -> pb.User:
        # Who may set without_code is server.rpc_access's to say; the caller passed it.
        user = await second_factors.disable_totp(
            self._uow(),
            self._clock,
            self._policy,
            self._second_factors,
            user_id=request.user_id,
            totp_code=request.totp_code,
            recovery_code=request.recovery_code,
            without_code=request.without_code,
        )
        return user_to_pb(user)

    async def RegenerateRecoveryCodes(
        self,
        request: pb.RegenerateRecoveryCodesRequest,
        context: Context[pb.RegenerateRecoveryCodesRequest, pb.RegenerateRecoveryCodesResponse],
    ) -> pb.RegenerateRecoveryCodesResponse:
        issued = await second_factors.regenerate_recovery_codes(
            self._uow(),
            self._clock,
            self._policy,
            self._second_factors,
            user_id=request.user_id,
            totp_code=request.totp_code,
        )
        return recovery_codes_to_pb(issued)

    async def ResetSecondFactors(
        self,
        request: pb.ResetSecondFactorsRequest,
        context: Context[pb.ResetSecondFactorsRequest, pb.User],
    ) -> pb.User:
        user = await second_factors.reset_second_factors(
            self._uow(), self._clock, self._second_factors, user_id=request.user_id
        )
        return user_to_pb(user)

    async def CompleteSignIn(
        self,
        request: pb.CompleteSignInRequest,
        context: Context[pb.CompleteSignInRequest, pb.AuthenticateResponse],
    ) -> pb.AuthenticateResponse:
        tokens = await second_factor_sign_in.complete_sign_in(
            self._uow(),
            self._issuer,
            self._clock,
            self._policy,
            self._lock_notices,
            self._second_factors.codes,
            self._webauthn,
            challenge_token=request.challenge_token,
            proof=proof_from_pb(request),
            user_agent=request.client.user_agent,
            ip_address=request.client.ip_address,
            device_label=request.client.device_label,
        )
        return authenticated_to_pb(tokens)

    async def BeginPasskeyRegistration(
        self,
        request: pb.BeginPasskeyRegistrationRequest,
        context: Context[pb.BeginPasskeyRegistrationRequest, pb.BeginPasskeyRegistrationResponse],
    ) -> pb.BeginPasskeyRegistrationResponse:
        begun = await passkeys.begin_passkey_registration(
            self._uow(), self._webauthn, self._clock, user_id=request.user_id
        )
        return passkey_registration_to_pb(begun)

    async def FinishPasskeyRegistration(
        self,
        request: pb.FinishPasskeyRegistrationRequest,
        context: Context[pb.FinishPasskeyRegistrationRequest, pb.Passkey],
    ) -> pb.Passkey:
        passkey = await passkeys.finish_passkey_registration(
            self._uow(),
            self._webauthn,
            self._clock,
            self._notifier,
            self._later,
            user_id=request.user_id,
            credential_json=request.credential_json,
            name=request.name,
        )
        return passkey_to_pb(passkey)

    async def ListPasskeys(
        self,
        request: pb.ListPasskeysRequest,
        context: Context[pb.ListPasskeysRequest, pb.ListPasskeysResponse],
    ) -> pb.ListPasskeysResponse:
        return passkeys_to_pb(await passkeys.list_passkeys(self._uow(), user_id=request.user_id))

    async def RemovePasskey(
        self,
        request: pb.RemovePasskeyRequest,
        context: Context[pb.RemovePasskeyRequest, pb.RemovePasskeyResponse],
    ) -> pb.RemovePasskeyResponse:
        await passkeys.remove_passkey(
            self._uow(),
            self._clock,
            self._notifier,
            self._later,
            user_id=request.user_id,
            passkey_id=request.passkey_id,
        )
        return pb.RemovePasskeyResponse()

    async def BeginPasskeySignIn(
        self,
        request: pb.BeginPasskeySignInRequest,
        context: Context[pb.BeginPasskeySignInRequest, pb.BeginPasskeySignInResponse],
    ) -> pb.BeginPasskeySignInResponse:
        begun = passkeys.begin_passkey_sign_in(
            self._webauthn, self._passkey_ceremonies, self._clock
        )
        return passkey_sign_in_to_pb(begun)

    async def FinishPasskeySignIn(
        self,
        request: pb.FinishPasskeySignInRequest,
        context: Context[pb.FinishPasskeySignInRequest, pb.AuthenticateResponse],
    ) -> pb.AuthenticateResponse:
        tokens = await passkeys.finish_passkey_sign_in(
            self._uow(),
            self._webauthn,
            self._passkey_ceremonies,
            self._issuer,
            self._clock,
            self._policy,
            ceremony_token=request.ceremony_token,
            credential_json=request.credential_json,
            user_agent=request.client.user_agent,
            ip_address=request.client.ip_address,
            device_label=request.client.device_label,
        )
        return authenticated_to_pb(tokens)
