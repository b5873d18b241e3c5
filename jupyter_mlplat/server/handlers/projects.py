"""``projects``, ``shares`` and ``shared``: groups of users, what is shared with them, and
reading what others shared with you (read-only; private unless shared)."""

from __future__ import annotations

from http import HTTPStatus

import tornado.web
from jupyter_server.auth.decorator import authorized

from ...schemas import (
    CreateProjectRequest,
    DescribeSharedModel,
    ListProjectsResponse,
    ListSharedQuery,
    ListSharedResponse,
    ProjectInfo,
    SharedEndpointInfo,
    SharedItem,
    SharedModelQuery,
    SharedPipelineInfo,
    SharedScheduleInfo,
    ShareRequest,
)
from ..openapi import api
from .base import MLPlatHandler


class ProjectsHandler(MLPlatHandler):
    @api("The projects you own or belong to (added by their owner, or through a hub group)",
         response=ListProjectsResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.list_projects))

    @api("A new project of yours; with hub_group, that JupyterHub group's members belong too",
         body=CreateProjectRequest, response=ProjectInfo, status=HTTPStatus.CREATED,
         errors=(409,))
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.parse_body(CreateProjectRequest)
        services = await self.services()
        self.write_json(await self.call(services.sharing.create_project, request.name,
                                        hub_group=request.hub_group,
                                        description=request.description,
                                        members=request.members), HTTPStatus.CREATED)


class ProjectHandler(MLPlatHandler):
    @api("A project you belong to: members and everything shared with it",
         response=ProjectInfo, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, owner: str, project: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.describe_project,
                                        f"{owner}/{project}"))

    @api("Delete a project of yours; what was shared with it becomes private again",
         errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def delete(self, owner: str, project: str) -> None:
        services = await self.services()
        unshared = await self.call(services.sharing.delete_project, f"{owner}/{project}")
        self.write_json({"deleted": f"{owner}/{project}", "unshared": unshared})


class ProjectMemberHandler(MLPlatHandler):
    @api("Add a user to a project of yours (adding twice changes nothing)",
         response=ProjectInfo, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def put(self, owner: str, project: str, user: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.add_member, f"{owner}/{project}",
                                        user))

    @api("Remove a user from a project of yours, or leave one (user = you)",
         response=ProjectInfo, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def delete(self, owner: str, project: str, user: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.remove_member, f"{owner}/{project}",
                                        user))


class ShareHandler(MLPlatHandler):
    @api("Share a model, endpoint, pipeline or schedule of yours with a project you belong "
         "to: its members may read it, never change it", body=ShareRequest,
         response=SharedItem, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def put(self, kind: str, name: str) -> None:
        request = self.parse_body(ShareRequest)
        services = await self.services()
        self.write_json(await self.call(services.sharing.share, kind, name, request.project))

    @api("Make it private again", response=SharedItem, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def delete(self, kind: str, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.unshare, kind, name))


class SharedHandler(MLPlatHandler):
    @api("What other users shared with your projects (or, with mine=true, what you shared)",
         query=ListSharedQuery, response=ListSharedResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(ListSharedQuery)
        services = await self.services()
        if query.mine:
            listing = await self.call(services.sharing.my_shares)
            listing.shared = [s for s in listing.shared if query.kind in (None, s.kind)]
        else:
            listing = await self.call(services.sharing.shared_with_me, query.kind)
        self.write_json(listing)


class SharedModelHandler(MLPlatHandler):
    @api("A version of a model another user shared with you, and whether you may load it "
         "(safe formats only)", query=SharedModelQuery, response=DescribeSharedModel,
         errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, owner: str, name: str) -> None:
        query = self.parse_query(SharedModelQuery)
        services = await self.services()
        ref = f"{owner}/{name}" + (f"@{query.version}" if query.version else "")
        self.write_json(await self.call(services.sharing.describe_model, ref))


class SharedEndpointHandler(MLPlatHandler):
    @api("An endpoint another user shared with you: what it serves and its revisions (never "
         "its token)", response=SharedEndpointInfo, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, owner: str, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.describe_endpoint, owner, name))


class SharedPipelineHandler(MLPlatHandler):
    @api("A pipeline another user shared with you: its newest runs with params and metrics",
         response=SharedPipelineInfo, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, owner: str, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.describe_pipeline, owner, name))


class SharedScheduleHandler(MLPlatHandler):
    @api("A schedule another user shared with you (by id) and its latest firings (never its "
         "notification targets)", response=SharedScheduleInfo, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, owner: str, name: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.sharing.describe_schedule, owner, name))
