"""`auth`: the embedded mode's shared passwords."""

from __future__ import annotations

from pydantic import Field, model_validator

from .fields import AdminPassword, Section, UserPassword, refuse


class AuthConfig(Section):
    """Shared passwords for JupyterHub's shared-password authenticator. Left out, strong ones are
    generated on first start into <data_dir>/credentials (mode 0600) and printed once."""

    admin_password: AdminPassword = Field(
        None, description="The admins' password (at least 32 characters). Default: generated."
    )
    user_password: UserPassword = Field(
        None, description="Every other user's password (at least 8 characters). Default: generated."
    )

    @model_validator(mode="after")
    def _different(self) -> AuthConfig:
        if self.admin_password and self.admin_password == self.user_password:
            raise refuse("must differ from auth.admin_password", at="user_password")
        return self
