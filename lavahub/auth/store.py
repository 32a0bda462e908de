"""The users' password hashes (`auth.type: local`) in lavahub's database, one row per user."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lavahub.db import Base, make_engine, upgrade

from .hashing import hash_password, new_password, verify_password


class PasswordRow(Base):
    __tablename__ = "passwords"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    hash: Mapped[str] = mapped_column(String(255))
    changed_by: Mapped[str] = mapped_column(String(255))  # the user, or who reset it
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class PasswordInfo:
    user: str
    changed_by: str
    changed_at: datetime


class PasswordStore:
    def __init__(self, url: str, *, create: bool = True):
        """`create=False` reads the database as it is: no migration, for read-only commands."""
        self.engine = make_engine(url)
        if create:
            upgrade(self.engine)

    def ensure(self, users: Iterable[str], by: str = "lavahub up") -> dict[str, str]:
        """Give every user without a password a new one; the new passwords, to be shown once."""
        created: dict[str, str] = {}
        with Session(self.engine) as session, session.begin():
            for user in users:
                if session.get(PasswordRow, user) is None:
                    created[user] = new_password()
                    session.add(_row(user, created[user], by))
        return created

    def reset(self, user: str, by: str) -> str:
        """A new password for `user`, replacing the old one; shown once."""
        password = new_password()
        self.set(user, password, by)
        return password

    def set(self, user: str, password: str, by: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(_row(user, password, by))

    def verify(self, user: str, password: str) -> bool:
        with Session(self.engine) as session:
            hashed = session.scalar(select(PasswordRow.hash).where(PasswordRow.user == user))
        return verify_password(password, hashed)

    def list(self) -> builtins.list[PasswordInfo]:
        with Session(self.engine) as session:
            rows = session.scalars(select(PasswordRow).order_by(PasswordRow.user)).all()
            return [PasswordInfo(row.user, row.changed_by, row.changed_at) for row in rows]


def _row(user: str, password: str, by: str) -> PasswordRow:
    return PasswordRow(user=user, hash=hash_password(password), changed_by=by, changed_at=datetime.now(UTC))
