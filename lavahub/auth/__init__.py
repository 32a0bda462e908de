"""Logging in to the hub: the authenticators lavahub adds to JupyterHub's, and what they keep.

- `hashing`: password hashes (scrypt, a salt per user) and their constant-time check.
- `store`: the users' password hashes in lavahub's database (`PasswordStore`).
- `local`: `auth.type: local`, a password per user, and the change-password page.
- `oidc`: `auth.type: oauth`, GenericOAuthenticator with admins from the provider's groups.
"""
