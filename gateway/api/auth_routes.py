"""Registration, login, token refresh, logout, invitations and the operator list."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, Field

from config import Settings
from gateway.api.routing import ApiError, Call, Endpoint, json_response
from gateway.auth import (
    REFRESH_COOKIE,
    clear_session_cookies,
    set_session_cookies,
)
from gateway.auth_passwords import hash_password, needs_rehash, verify_password
from gateway.auth_tokens import issue_access_token, new_opaque_token
from store import login_attempts, users
from store.users import EmailTaken, User

log = structlog.get_logger(__name__)

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,190}$"
Email = Field(pattern=EMAIL_PATTERN, max_length=254)


class UserOut(BaseModel):
    id: int
    email: str
    display_name: str
    role: Literal["admin", "agent"]

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, email=user.email, display_name=user.display_name, role=user.role)  # type: ignore[arg-type]


class UserList(BaseModel):
    users: list[UserOut]


class RegisterBody(BaseModel):
    email: str = Email
    password: str = Field(min_length=10, max_length=200)
    display_name: str = Field(min_length=1, max_length=80)
    invite: str | None = Field(default=None, max_length=200)
    # Production only, for the first operator: ADMIN_BOOTSTRAP_SECRET.
    bootstrap_secret: str | None = Field(default=None, max_length=200)


class LoginBody(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=200)


class RefreshBody(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


class Session(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


class RegistrationInfo(BaseModel):
    open_to_first_user: bool
    mode: Literal["invite", "closed"]
    # Production: the first operator must give ADMIN_BOOTSTRAP_SECRET.
    needs_bootstrap_secret: bool = False


class InviteBody(BaseModel):
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=254)
    role: Literal["admin", "agent"] = "agent"


class InviteOut(BaseModel):
    token: str
    register_url: str
    role: Literal["admin", "agent"]
    email: str | None
    expires_at: datetime


class Done(BaseModel):
    ok: bool = True


async def _session(
    call: Call,
    user: User,
    status: int = 200,
    *,
    refresh: str | None = None,
    family: str | None = None,
) -> web.Response:
    """Tokens for the user: a new login (new family), or the rotation that made `refresh`."""
    settings = call.services.settings
    if refresh is None or family is None:
        refresh = new_opaque_token()
        pool = await call.services.pools.get()
        async with pool.acquire() as conn:
            family = await users.add_refresh_token(
                conn, user.id, refresh, timedelta(seconds=settings.jwt_refresh_ttl_seconds)
            )
    access = issue_access_token(settings, user.id, user.role, session=family)
    body = Session(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.jwt_access_ttl_seconds,
        user=UserOut.of(user),
    )
    response = json_response(body, status)
    set_session_cookies(response, settings, access, refresh)
    return response


def _too_many(lockout: login_attempts.Lockout, what: str) -> ApiError:
    return ApiError(
        429,
        f"too many {what} for this {lockout.scope}; try again later",
        headers={"Retry-After": str(lockout.retry_after)},
    )


async def registration(call: Call) -> RegistrationInfo:
    settings = call.services.settings
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        empty = await users.count(conn) == 0
    return RegistrationInfo(
        open_to_first_user=empty,
        mode=settings.registration_mode,
        needs_bootstrap_secret=empty and settings.is_production,
    )


def _check_bootstrap(settings: Settings, given: str | None) -> None:
    """In production the first operator, who becomes admin, must prove they run the
    service: the first anonymous caller would otherwise own it."""
    if not settings.is_production:
        return
    expected = settings.admin_bootstrap_secret
    if expected is None or not expected.get_secret_value():
        raise ApiError(
            403,
            "the first admin needs ADMIN_BOOTSTRAP_SECRET, or `wa-support user create --admin`",
        )
    if given is None or not hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    ):
        raise ApiError(403, "the first admin needs the bootstrap secret (ADMIN_BOOTSTRAP_SECRET)")


async def register(call: Call) -> web.StreamResponse:
    body: RegisterBody = call.body
    settings = call.services.settings
    lockout = await login_attempts.begin_registration(
        call.services.require_redis(),
        settings.redis_key_prefix,
        call.request.remote or "unknown",
        window=settings.register_window_seconds,
        limit=settings.register_max_per_ip,
    )
    if lockout is not None:
        raise _too_many(lockout, "registrations")
    password_hash = await hash_password(body.password)
    pool = await call.services.pools.get()
    async with pool.acquire() as conn, conn.transaction():
        await users.lock_for_registration(conn)
        role: str | None = None  # None: the first user, who becomes admin
        if await users.count(conn) > 0:
            if settings.registration_mode == "closed":
                raise ApiError(403, "registration is closed; ask an admin")
            if not body.invite:
                raise ApiError(403, "registration needs an invite from an admin")
            role = await users.claim_invite(conn, body.invite, body.email)
            if role is None:
                raise ApiError(403, "this invite is unknown, used, expired or for another email")
        else:
            _check_bootstrap(settings, body.bootstrap_secret)
        try:
            user = await users.create_user(
                conn,
                email=body.email,
                display_name=body.display_name,
                password_hash=password_hash,
                role=role,
            )
        except EmailTaken as exc:
            raise ApiError(409, "an operator with this email already exists") from exc
    log.info("operator_registered", user_id=user.id, role=user.role)
    return await _session(call, user, 201)


async def login(call: Call) -> web.StreamResponse:
    body: LoginBody = call.body
    services = call.services
    settings = services.settings
    redis = services.require_redis()
    prefix = settings.redis_key_prefix
    ip = call.request.remote or "unknown"
    # Counted before the password is checked, atomically: concurrent guesses cannot all
    # slip under the limit, and a locked account cannot still be guessed at.
    lockout = await login_attempts.begin_login(
        redis,
        prefix,
        body.email,
        ip,
        window=settings.login_failure_window_seconds,
        per_account=settings.login_max_failures_per_account,
        per_ip=settings.login_max_failures_per_ip,
    )
    if lockout is not None:
        raise _too_many(lockout, "failed logins")
    pool = await services.pools.get()
    async with pool.acquire() as conn:
        found = await users.credentials(conn, body.email)
    if not await verify_password(found.password_hash if found else None, body.password):
        log.warning("login_failed", ip=ip)
        raise ApiError(401, "wrong email or password")
    assert found is not None
    await login_attempts.login_succeeded(redis, prefix, body.email, ip)
    if needs_rehash(found.password_hash):
        async with pool.acquire() as conn:
            await users.set_password_hash(conn, found.user.id, await hash_password(body.password))
    return await _session(call, found.user)


async def refresh(call: Call) -> web.StreamResponse:
    body: RefreshBody | None = call.body
    token = (body.refresh_token if body else None) or call.request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise ApiError(401, "no refresh token")
    successor = new_opaque_token()
    ttl = timedelta(seconds=call.services.settings.jwt_refresh_ttl_seconds)
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        rotation = await users.rotate_refresh_token(conn, token, successor, ttl)
    if rotation.reused:
        # OAuth 2.0 Security BCP §4.14: a rotated token coming back means two holders.
        log.warning("refresh_token_reused", family=rotation.family)
        raise ApiError(401, "refresh token reused: this login is revoked, log in again")
    if rotation.user is None:
        raise ApiError(401, "refresh token unknown, used or expired")
    return await _session(call, rotation.user, refresh=successor, family=rotation.family)


async def logout(call: Call) -> web.StreamResponse:
    body: RefreshBody | None = call.body
    token = (body.refresh_token if body else None) or call.request.cookies.get(REFRESH_COOKIE)
    if token:
        pool = await call.services.pools.get()
        async with pool.acquire() as conn:
            await users.revoke_refresh_token(conn, token)
    response = json_response(Done())
    clear_session_cookies(response)
    return response


async def me(call: Call) -> UserOut:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        user = await users.by_id(conn, call.user.user_id)
    if user is None:
        raise ApiError(401, "this operator no longer exists")
    return UserOut.of(user)


async def list_users(call: Call) -> UserList:
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        return UserList(users=[UserOut.of(u) for u in await users.all_users(conn)])


async def invite(call: Call) -> web.StreamResponse:
    body: InviteBody = call.body
    settings = call.services.settings
    if settings.registration_mode == "closed":
        raise ApiError(409, "registration is closed (REGISTRATION_MODE=closed)")
    token = new_opaque_token()
    pool = await call.services.pools.get()
    async with pool.acquire() as conn:
        expires = await users.add_invite(
            conn,
            token=token,
            email=body.email,
            role=body.role,
            created_by=call.user.user_id,
            ttl=timedelta(seconds=settings.invite_ttl_seconds),
        )
    out = InviteOut(
        token=token,
        register_url=f"/register?invite={token}",
        role=body.role,
        email=body.email,
        expires_at=expires,
    )
    return json_response(out, 201)


ENDPOINTS = [
    Endpoint("GET", "/api/auth/registration", registration, "Whether registration is open",
             "auth", access="public", response=RegistrationInfo),
    Endpoint("POST", "/api/auth/register", register, "Register an operator (first one: admin)",
             "auth", access="public", body=RegisterBody, response=Session, status=201,
             errors=(403, 409, 429)),
    Endpoint("POST", "/api/auth/login", login, "Log in: access and refresh tokens, cookies",
             "auth", access="public", body=LoginBody, response=Session, errors=(401, 429)),
    Endpoint("POST", "/api/auth/refresh", refresh, "Trade a refresh token for new tokens",
             "auth", access="public", body=RefreshBody, response=Session, errors=(401,)),
    Endpoint("POST", "/api/auth/logout", logout, "Revoke the refresh token, clear cookies",
             "auth", access="public", body=RefreshBody, response=Done),
    Endpoint("GET", "/api/auth/me", me, "The calling operator", "auth", response=UserOut),
    Endpoint("GET", "/api/users", list_users, "All operators (for assignment)", "auth",
             response=UserList),
    Endpoint("POST", "/api/auth/invites", invite, "Invite an operator (admin)", "auth",
             access="admin", body=InviteBody, response=InviteOut, status=201, errors=(409,)),
]  # fmt: skip
