"""``pipelines``: a notebook parsed as a pipeline, before anything runs."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from ...schemas import DescribePipeline, DescribePipelineQuery
from ..openapi import api
from .base import MLPlatHandler


class PipelinesHandler(MLPlatHandler):
    @api("A notebook's pipeline: steps, data edges, parameters, which steps a run now would "
         "take from the cache, and errors in the marks (200 with `errors` filled)",
         query=DescribePipelineQuery, response=DescribePipeline, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(DescribePipelineQuery)
        services = await self.services()
        self.write_json(await self.call(services.describe_pipeline, query.notebook))
