"""``endpoints``: deploy, traffic split, rollback, undeploy, tokens and "try it"."""

from __future__ import annotations

from http import HTTPStatus

import tornado.web
from jupyter_server.auth.decorator import authorized

from ...schemas import (
    CreateDeployment,
    DeployResult,
    DescribeEndpoint,
    ListEndpointsResponse,
    TryEndpoint,
    TryEndpointResponse,
    UpdateTraffic,
)
from ..openapi import api
from .base import MLPlatHandler

#: The serve process could not be started or reached.
_GATEWAY = HTTPStatus.BAD_GATEWAY


class EndpointsHandler(MLPlatHandler):
    @api("Every endpoint with its revision, routes, URL and a copyable curl",
         response=ListEndpointsResponse, errors=(_GATEWAY,))
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        services = await self.services()
        self.write_json(await self.call(services.endpoints.list))

    @api("Deploy a model version (default: the newest blessed one) to an endpoint, all at "
         "once or as a canary, optionally with a shadow; a version that is not blessed needs "
         "force and a reason. The token of a new endpoint is in the answer, once.",
         body=CreateDeployment, response=DeployResult, status=HTTPStatus.CREATED,
         errors=(404, 409, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.parse_body(CreateDeployment)
        services = await self.services()
        self.write_json(await self.call(services.endpoints.deploy, request), HTTPStatus.CREATED)


class EndpointHandler(MLPlatHandler):
    @api("One endpoint: its revisions, routes, shadow, URL and curl", response=DescribeEndpoint,
         errors=(404, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.endpoints.describe, name))

    @api("Undeploy: the endpoint stops serving (a revision without routes; history stays)",
         response=DescribeEndpoint, errors=(404, 409, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.endpoints.undeploy, name))


class TrafficHandler(MLPlatHandler):
    @api("New traffic weights across model versions (sum 100); shadow and token stay",
         body=UpdateTraffic, response=DescribeEndpoint, errors=(404, 409, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        request = self.parse_body(UpdateTraffic)
        services = await self.services()
        self.write_json(await self.call(services.endpoints.set_traffic, name, request))


class RollbackHandler(MLPlatHandler):
    @api("Serve what the endpoint served before its newest revision",
         response=DescribeEndpoint, errors=(404, 409, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.endpoints.rollback, name))


class TokenHandler(MLPlatHandler):
    @api("A new bearer token for the endpoint (in the answer, once); the old one stops working",
         response=DeployResult, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.endpoints.rotate_token, name))


class TryEndpointHandler(MLPlatHandler):
    @api("Call the endpoint like a client: the given inputs, or the stored sample input of "
         "the version taking most of its traffic; the answer whatever its status",
         body=TryEndpoint, response=TryEndpointResponse, errors=(404, 409, _GATEWAY))
    @tornado.web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        request = self.parse_body(TryEndpoint, nul_allowed=("inputs",))
        services = await self.services()
        self.write_json(await self.call(services.endpoints.try_endpoint, name, request))
