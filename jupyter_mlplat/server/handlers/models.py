"""``models``: the registry: versions, metrics, verdicts with reasons, slices, lineage, aliases."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from ...schemas import (
    DescribeLineage,
    DescribeModel,
    DescribeModelVersion,
    ListModelsResponse,
    UpdateAlias,
)
from ..openapi import api
from .base import MLPlatHandler


class ModelsHandler(MLPlatHandler):
    @api("Every model: version count, newest version and its verdict, aliases",
         response=ListModelsResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        services = await self.services()
        self.write_json(await self.call(services.models.list))


class ModelHandler(MLPlatHandler):
    @api("A model: every version (verdict and its checks, metrics, slices, signature, "
         "lineage), aliases with their history, the validation policy",
         response=DescribeModel, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.models.describe, name))


class ModelVersionHandler(MLPlatHandler):
    @api("One version of a model, by number or alias", response=DescribeModelVersion,
         errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.models.describe_version, f"{name}@{version}"))


class LineageHandler(MLPlatHandler):
    @api("Where a version came from: notebook cells -> step version -> inputs -> run, and the "
         "endpoint revisions that served it", response=DescribeLineage, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str, version: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.models.lineage, f"{name}@{version}"))


class AliasHandler(MLPlatHandler):
    @api("Point an alias (production, staging, ...) at a version; the move is recorded",
         body=UpdateAlias, response=DescribeModel, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def put(self, name: str, alias: str) -> None:
        request = self.parse_body(UpdateAlias)
        services = await self.services()
        self.write_json(await self.call(services.models.set_alias, name, alias,
                                        request.version, reason=request.reason))

    @api("Remove an alias; the removal is recorded", response=DescribeModel, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str, alias: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.models.set_alias, name, alias, None))
