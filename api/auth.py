"""Bearer-token authentication and role checks.

Every route but ``/health`` depends on one of the role aliases below. A missing or unknown
token is 401; a token whose role may not use the route is 403; objects of other tenants are 404
(see :class:`store.catalog.Scope`), so a token never learns which ids exist elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import ConnDep
from application.localisation import Message
from store.auth import Role, TokenInfo, resolve_token

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer qg_…`; create tokens with `qorgau tokens create`",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_token(request: Request, conn: ConnDep, credentials: Credentials) -> TokenInfo:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            401,
            Message("missing bearer token: send `Authorization: Bearer <token>`"),
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = await resolve_token(conn, credentials.credentials)
    if token is None:
        raise HTTPException(
            401,
            Message("unknown, revoked or expired token"),
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    # Messages for people in this request follow the holder's chosen language.
    request.state.locale = token.locale
    return token


def require_role(*roles: Role) -> Callable[..., Awaitable[TokenInfo]]:
    allowed = ", ".join(r.value for r in roles)

    async def check(token: Annotated[TokenInfo, Depends(current_token)]) -> TokenInfo:
        if token.role not in roles:
            raise HTTPException(
                403,
                Message(
                    "a {role} token may not do this; allowed roles: {allowed}",
                    role=token.role.value,
                    allowed=allowed,
                ),
            )
        return token

    return check


# Who may do what. Reading the registry and exposure is for people with a tenant; writing is for
# admins and an enterprise's own safety officer; the scoring service reads exports and the map.
Reader = Annotated[
    TokenInfo, Depends(require_role(Role.ADMIN, Role.SAFETY_OFFICER, Role.INSPECTOR))
]
Writer = Annotated[TokenInfo, Depends(require_role(Role.ADMIN, Role.SAFETY_OFFICER))]
Admin = Annotated[TokenInfo, Depends(require_role(Role.ADMIN))]
AnyRole = Annotated[
    TokenInfo,
    Depends(require_role(Role.ADMIN, Role.SAFETY_OFFICER, Role.INSPECTOR, Role.SCORING)),
]
