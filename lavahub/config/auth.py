"""`auth`: who may log in, and how they prove it (`auth.type`).

- `local` (the default): every user has a password of their own, generated on first start,
  kept only as a hash in lavahub's database, changeable by its user, reset by an admin.
- `shared`: JupyterHub's shared-password authenticator: one password for admins, one for
  everyone else. Anyone who knows the users' password logs in as any user, so the platform
  refuses it beyond loopback and on Kubernetes (`PlatformConfig`).
- `oauth`: an OpenID Connect provider (oauthenticator's GenericOAuthenticator), `auth.oauth`.
- `pam`: the machine's own accounts (JupyterHub's PAMAuthenticator).

Whatever the type, who may log in is the config's admins and project members.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .fields import (
    AdminPassword,
    OptionalPath,
    OptionalText,
    Positive,
    Section,
    Text,
    UserPassword,
    refuse,
)

AuthType = Literal["local", "shared", "oauth", "pam"]
SHARED_KEYS = ("admin_password", "user_password")


def _endpoint(name: str) -> Any:
    return Field(None, description=f"The provider's {name} endpoint. Default: from the issuer's discovery.")


class OAuthConfig(Section):
    """An OpenID Connect provider. Give `issuer` (its endpoints are read from
    `<issuer>/.well-known/openid-configuration` when the hub starts), or the three endpoints."""

    client_id: Text = Field(description="The hub's client id, as registered at the provider.")
    client_secret: OptionalText = Field(
        None, description="The client's secret. Give it or client_secret_file, not both."
    )
    client_secret_file: OptionalPath = Field(
        None, description="A file holding the client's secret (a mounted Secret, say); read at hub start."
    )
    issuer: OptionalText = Field(
        None, description="The provider's issuer URL; its discovery document names the endpoints."
    )
    authorize_url: OptionalText = _endpoint("authorization")
    token_url: OptionalText = _endpoint("token")
    userdata_url: OptionalText = _endpoint("userinfo")
    callback_url: OptionalText = Field(
        None,
        description="Where the provider sends users back: https://<your host>/hub/oauth_callback, as "
        "registered at the provider. Default: guessed from each login request's host.",
    )
    username_claim: Text = Field(
        "preferred_username", description="The userinfo claim that is the hub user name."
    )
    scope: tuple[Text, ...] = Field(
        ("openid", "profile", "email"), description="The scopes the hub asks the provider for."
    )
    groups_claim: Text = Field("groups", description="The userinfo claim listing the user's groups.")
    admin_groups: tuple[Text, ...] = Field(
        (),
        description="Members of these provider groups (in groups_claim) log in as hub admins, "
        "besides the config's admins.",
    )
    login_service: Text = Field(
        "OpenID Connect", description="The provider's name on the login button ('Sign in with ...')."
    )

    @model_validator(mode="after")
    def _complete(self) -> OAuthConfig:
        if self.client_secret is not None and self.client_secret_file is not None:
            raise refuse("give client_secret or client_secret_file, not both", at="client_secret_file")
        if self.client_secret is None and self.client_secret_file is None:
            raise refuse("is required (or client_secret_file)", at="client_secret")
        endpoints = (self.authorize_url, self.token_url, self.userdata_url)
        if self.issuer is None and not all(endpoints):
            raise refuse(
                "is required unless authorize_url, token_url and userdata_url are all given", at="issuer"
            )
        return self


class AuthConfig(Section):
    """How users log in (`type`) and that type's settings. Admins and project members are the
    users who may log in, whatever the type."""

    type: AuthType = Field(
        "local",
        description="local: a password per user, generated on first start, stored hashed in lavahub's "
        "database, shown once by `lavahub up`. shared: one admins' and one users' password (loopback "
        "and the local backend only; implied when admin_password or user_password is given). oauth: "
        "an OpenID Connect provider (auth.oauth). pam: the machine's own accounts.",
    )
    admin_password: AdminPassword = Field(
        None,
        description="shared: the admins' password (at least 32 characters). Default: generated into "
        "<data_dir>/credentials (mode 0600) and printed once.",
    )
    user_password: UserPassword = Field(
        None,
        description="shared: every other user's password (at least 8 characters). Default: generated.",
    )
    min_password_length: Positive = Field(
        10, description="local: the shortest password a user may choose on the change-password page."
    )
    oauth: OAuthConfig | None = Field(None, description="oauth: the OpenID Connect provider.")

    @model_validator(mode="before")
    @classmethod
    def _shared_when_passwords_given(cls, data: Any) -> Any:
        # configs from before auth.type set the shared passwords only: they keep meaning shared
        if isinstance(data, dict) and "type" not in data and any(data.get(k) for k in SHARED_KEYS):
            return {**data, "type": "shared"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AuthConfig:
        for key in SHARED_KEYS:
            if getattr(self, key) is not None and self.type != "shared":
                raise refuse(f"is for auth.type shared only (auth.type is {self.type})", at=key)
        if self.admin_password and self.admin_password == self.user_password:
            raise refuse("must differ from auth.admin_password", at="user_password")
        if self.type == "oauth" and self.oauth is None:
            raise refuse("is required for auth.type oauth", at="oauth")
        if self.type != "oauth" and self.oauth is not None:
            raise refuse(f"is for auth.type oauth only (auth.type is {self.type})", at="oauth")
        return self
