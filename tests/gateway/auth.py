"""The HTTP API JWT authorizer, with a locally configured HS256 secret instead of a JWKS URL."""
from __future__ import annotations

import json
from dataclasses import dataclass

import jwt


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    claims: dict[str, str] | None = None
    scopes: list[str] | None = None
    error: str = ""              # error_description for the www-authenticate header
    forbidden: bool = False      # valid token, but none of the route's scopes (API Gateway: 403)

    def www_authenticate(self) -> str:
        if not self.error:
            return "Bearer"
        desc = self.error.replace('"', "'")
        return f'Bearer scope="" error="invalid_token" error_description="{desc}"'

    def context(self) -> dict:
        """requestContext.authorizer as API Gateway builds it for a JWT authorizer."""
        return {"jwt": {"claims": self.claims, "scopes": self.scopes}}


def claim_to_string(value) -> str:
    """API Gateway passes every claim as a string; non-string values are rendered the way its
    (Go) authorizer prints them: numbers without exponent, lists as ``[a b]``, maps as ``map[k:v]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(claim_to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{claim_to_string(v)}" for k, v in sorted(value.items())) + "]"
    if value is None:
        return ""
    return json.dumps(value)


class JwtAuthorizer:
    def __init__(self, secret: str, issuer: str, audience: str | list[str]):
        self.secret = secret
        self.issuer = issuer
        self.audiences = [audience] if isinstance(audience, str) else list(audience)

    def authorize(self, authorization: str | None, route_scopes=()) -> AuthResult:
        """Check the identity source ($request.header.Authorization, optionally "Bearer "-prefixed)."""
        if not authorization or not authorization.strip():
            return AuthResult(ok=False)
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False})
        except jwt.ExpiredSignatureError:
            return AuthResult(ok=False, error="the token has expired")
        except jwt.ImmatureSignatureError:
            return AuthResult(ok=False, error="the token is not valid yet")
        except jwt.InvalidIssuerError:
            return AuthResult(ok=False, error="the token does not have a valid issuer")
        except jwt.MissingRequiredClaimError as exc:
            return AuthResult(ok=False, error=f"the token lacks the {exc.claim} claim")
        except jwt.InvalidSignatureError:
            return AuthResult(ok=False, error="signature is invalid")
        except jwt.InvalidTokenError as exc:
            return AuthResult(ok=False, error=f"invalid token: {exc}")

        # API Gateway: `aud` must match one configured audience; `client_id` only when `aud` is absent.
        aud = claims.get("aud")
        if aud is not None:
            auds = aud if isinstance(aud, list) else [aud]
            valid_aud = any(a in self.audiences for a in auds)
        else:
            valid_aud = claims.get("client_id") in self.audiences
        if not valid_aud:
            return AuthResult(ok=False, error="the token does not have a valid audience")

        scopes = _scopes(claims)
        if route_scopes and not set(route_scopes) & set(scopes or []):
            return AuthResult(ok=False, forbidden=True)
        return AuthResult(ok=True, claims={k: claim_to_string(v) for k, v in claims.items()},
                          scopes=scopes)


def _scopes(claims: dict) -> list[str] | None:
    raw = claims.get("scope", claims.get("scp"))
    if raw is None:
        return None
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return str(raw).split()
