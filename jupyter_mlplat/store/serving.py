"""The store's serving queries: endpoints, their revisions and tokens (a ``Store`` mixin).

Deploying is writing a new ``endpoint_revisions`` row; a serve process applies the newest
revision of every endpoint. Rows are only added (rollback is a new revision pointing back), so
the history of who served what, when, stays whole.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidSpecError, NotFoundError
from . import orm
from .engine import insert_or_skip
from .registry import check_model_name

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class ServingQueries:
    """Endpoint rows of one owner (mixed into ``Store``)."""

    owner: str

    if TYPE_CHECKING:
        def session(self) -> Any: ...

    def _endpoint(self, s: Session, name: str, *, lock: bool = False) -> orm.Endpoint:
        """The owner's endpoint ``name``; ``lock`` row-locks it until the transaction ends
        (PostgreSQL ``FOR UPDATE``: revision numbers are taken one writer at a time)."""
        query = select(orm.Endpoint).where(orm.Endpoint.owner == self.owner,
                                           orm.Endpoint.name == name)
        row = s.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise NotFoundError(f"no endpoint {name!r}; `jupyter mlplat endpoints` lists them")
        return row

    def endpoint_row(self, name: str) -> orm.Endpoint:
        with self.session() as s:
            return self._endpoint(s, name)

    def ensure_endpoint(self, name: str) -> tuple[orm.Endpoint, bool]:
        """The endpoint ``name`` and whether this call created it."""
        check_model_name(name, "endpoint name")
        query = select(orm.Endpoint).where(orm.Endpoint.owner == self.owner,
                                           orm.Endpoint.name == name)
        with self.session() as s:
            row = s.scalar(query)
            if row is not None:
                return row, False
            # Skipped when another process created it meanwhile: then it is theirs, not ours.
            created = insert_or_skip(s, orm.Endpoint, {"owner": self.owner, "name": name})
            return s.scalar(query), created is not None

    def set_endpoint_token(self, name: str, token_hash: str | None) -> None:
        with self.session() as s:
            row = self._endpoint(s, name)
            row.token_hash = token_hash
            row.token_rotated_at = datetime.now(UTC)

    def add_endpoint_revision(self, name: str, **fields: Any) -> orm.EndpointRevision:
        """The next revision of endpoint ``name`` (``fields``: ``EndpointRevision`` columns);
        concurrent writers get distinct numbers."""
        for _ in range(20):
            try:
                with self.session() as s:
                    return self._insert_revision(s, name, fields)
            except IntegrityError:
                continue
        raise InvalidSpecError(f"could not allocate a revision for endpoint {name!r}")

    def _insert_revision(self, s: Any, name: str, fields: dict[str, Any]) -> orm.EndpointRevision:
        """The next revision of ``name`` in session ``s``, numbered under the endpoint's row
        lock (the caller retries on an IntegrityError)."""
        endpoint = self._endpoint(s, name, lock=True)
        latest = s.scalar(select(func.max(orm.EndpointRevision.revision)).where(
            orm.EndpointRevision.endpoint_id == endpoint.id))
        row = orm.EndpointRevision(owner=self.owner, endpoint_id=endpoint.id,
                                   revision=(latest or 0) + 1, **fields)
        endpoint.public = bool(fields.get("public", endpoint.public))
        s.add(row)
        s.flush()
        return row

    def endpoint_revisions(self, name: str) -> list[orm.EndpointRevision]:
        """Revisions of ``name``, oldest first."""
        with self.session() as s:
            endpoint = self._endpoint(s, name)
            return list(s.scalars(select(orm.EndpointRevision).where(
                orm.EndpointRevision.endpoint_id == endpoint.id,
            ).order_by(orm.EndpointRevision.revision)).all())

    def endpoints(self) -> list[tuple[orm.Endpoint, orm.EndpointRevision | None]]:
        """Every endpoint of the owner with its newest revision."""
        with self.session() as s:
            rows = s.scalars(select(orm.Endpoint).where(orm.Endpoint.owner == self.owner)
                             .order_by(orm.Endpoint.name)).all()
            out = []
            for endpoint in rows:
                current = s.scalar(select(orm.EndpointRevision).where(
                    orm.EndpointRevision.endpoint_id == endpoint.id,
                ).order_by(orm.EndpointRevision.revision.desc()).limit(1))
                out.append((endpoint, current))
            return out

    def serving_generation(self) -> str:
        """Changes whenever what a serve process must serve changes (a new revision, a token
        rotation, public or not): a digest of every endpoint's newest revision and token hash.

        Not ``max(id)``: on PostgreSQL a revision can commit after a higher id was seen, and a
        token rotation's clock may run behind; a digest of the state itself misses neither.
        """
        import hashlib

        with self.session() as s:
            newest = (select(orm.EndpointRevision.endpoint_id,
                             func.max(orm.EndpointRevision.revision).label("revision"))
                      .where(orm.EndpointRevision.owner == self.owner)
                      .group_by(orm.EndpointRevision.endpoint_id).subquery())
            rows = s.execute(
                select(orm.Endpoint.name, newest.c.revision, orm.Endpoint.token_hash,
                       orm.Endpoint.public)
                .outerjoin(newest, newest.c.endpoint_id == orm.Endpoint.id)
                .where(orm.Endpoint.owner == self.owner).order_by(orm.Endpoint.name)
            ).all()
        return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()

    def serving_states(self) -> list[dict[str, Any]]:
        """What to serve: every endpoint whose newest revision routes somewhere.

        Each item: ``name``, ``owner``, ``revision``, ``routes``, ``shadow``, ``sticky_header``,
        ``public``, ``token_hash`` (an ``schemas.EndpointState``).
        """
        out = []
        for endpoint, current in self.endpoints():
            if current is None or not current.routes:
                continue
            out.append({
                "name": endpoint.name, "owner": endpoint.owner, "revision": current.revision,
                "routes": list(current.routes), "shadow": current.shadow,
                "sticky_header": current.sticky_header, "public": bool(current.public),
                "token_hash": endpoint.token_hash,
            })
        return out
