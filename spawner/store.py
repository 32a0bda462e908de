"""The template store: templates and their versions in a SQLAlchemy database.

Seeded from the config on start; a template an admin has since changed is never
overwritten by the config again. Both spawners read it at every form render and
spawn, so catalogue changes apply without a hub restart.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lavahub.db import Base, make_engine, upgrade

from .errors import PublicError
from .templates import Template, template_from_dict

log = logging.getLogger(__name__)

CONFIG_AUTHOR = "config"


class TemplateRow(Base):
    __tablename__ = "templates"

    slug: Mapped[str] = mapped_column(String(63), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TemplateVersionRow(Base):
    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("slug", "version", name="uq_template_versions_slug_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("templates.slug", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass
class SeedReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # changed by an admin; config ignored


class TemplateStore:
    def __init__(self, url: str, *, create: bool = True):
        """`create=False` reads the database as it is: no migration, for read-only commands."""
        self.engine = make_engine(url)
        if create:
            upgrade(self.engine)

    def list(self) -> builtins.list[Template]:
        """Every template, disabled ones included, in a stable order (by slug)."""
        with Session(self.engine) as session:
            rows = session.scalars(select(TemplateRow).order_by(TemplateRow.slug)).all()
            return [_template(row) for row in rows]

    def get(self, slug: str) -> Template | None:
        with Session(self.engine) as session:
            row = session.get(TemplateRow, slug)
            return _template(row) if row else None

    def put(self, template: Template, author: str) -> Template:
        """Create or change a template; every change is a new version."""
        with Session(self.engine) as session, session.begin():
            row = session.get(TemplateRow, template.slug)
            stored = self._write(session, row, template, author)
        return stored

    def put_many(self, templates: Iterable[Template], author: str) -> builtins.list[Template]:
        """Create or change several templates in one transaction: all of them, or none."""
        with Session(self.engine) as session, session.begin():
            return [self._write(session, session.get(TemplateRow, t.slug), t, author) for t in templates]

    def seed(self, templates: Iterable[Template]) -> SeedReport:
        """Add the config's templates; update one only while its last change came from the config."""
        report = SeedReport()
        with Session(self.engine) as session, session.begin():
            for template in templates:
                row = session.get(TemplateRow, template.slug)
                if row is None:
                    self._write(session, None, template, CONFIG_AUTHOR)
                    report.added.append(template.slug)
                elif row.spec == template.to_dict():
                    continue
                elif row.updated_by == CONFIG_AUTHOR:
                    self._write(session, row, template, CONFIG_AUTHOR)
                    report.updated.append(template.slug)
                else:
                    report.kept.append(template.slug)
        if report.kept:
            log.warning(
                "Templates %s were changed by an admin; their config entries are not applied",
                ", ".join(repr(slug) for slug in report.kept),
            )
        return report

    def history(self, slug: str) -> builtins.list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(TemplateVersionRow)
                .where(TemplateVersionRow.slug == slug)
                .order_by(TemplateVersionRow.version)
            ).all()
            history: builtins.list[dict[str, Any]] = []
            previous: dict[str, Any] = {}
            for r in rows:
                history.append({
                    "version": r.version,
                    "author": r.author,
                    "created": r.created_at.isoformat(),
                    "spec": r.spec,
                    "changes": spec_diff(previous, r.spec),
                })  # fmt: skip
                previous = r.spec
            return history

    def delete(self, slug: str) -> bool:
        """Remove a template and its history; False if there was none."""
        with Session(self.engine) as session, session.begin():
            row = session.get(TemplateRow, slug)
            if row is None:
                return False
            for old in session.scalars(select(TemplateVersionRow).where(TemplateVersionRow.slug == slug)):
                session.delete(old)
            session.delete(row)
            return True

    def rollback(self, slug: str, version: int, author: str) -> Template:
        """Make an earlier version current again, as a new version (history only grows)."""
        with Session(self.engine) as session, session.begin():
            row = session.get(TemplateRow, slug)
            if row is None:
                raise PublicError(f"No template named {slug!r}.", field="slug")
            old = session.scalars(
                select(TemplateVersionRow).where(
                    TemplateVersionRow.slug == slug, TemplateVersionRow.version == version
                )
            ).first()
            if old is None:
                raise PublicError(
                    f"Template {slug!r} has no version {version}.",
                    hint=f"its versions are 1 to {row.version}",
                    field="version",
                )
            template = template_from_dict(old.spec, f"template {slug!r} version {version}")
            return self._write(session, row, template, author)

    @staticmethod
    def _write(session: Session, row: TemplateRow | None, template: Template, author: str) -> Template:
        now = datetime.now(UTC)
        spec = template.to_dict()
        version = (row.version if row else 0) + 1
        if row is None:
            row = TemplateRow(slug=template.slug)
            session.add(row)
        row.spec, row.version, row.enabled = spec, version, template.enabled
        row.updated_by, row.updated_at = author, now
        session.flush()
        session.add(
            TemplateVersionRow(slug=template.slug, version=version, spec=spec, author=author, created_at=now)
        )
        return template.with_version(version)


def spec_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Field by field, what a version changed: `{field: {"from": old, "to": new}}`."""
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def _template(row: TemplateRow) -> Template:
    return template_from_dict(row.spec, f"stored template {row.slug!r}").with_version(row.version)
