"""``schedules``: notebooks and pipelines fired on cron: make, list, show, change, pause,
resume, delete and run now; a schedule's history; a preview of a cron expression's fire times."""

from __future__ import annotations

from http import HTTPStatus

import tornado.web
from jupyter_server.auth.decorator import authorized

from ...schemas import (
    CreateSchedule,
    DescribeFiring,
    DescribeSchedule,
    ListFiringsQuery,
    ListFiringsResponse,
    ListSchedulesResponse,
    PreviewScheduleQuery,
    PreviewScheduleResponse,
    UpdateSchedule,
)
from ..openapi import api
from .base import MLPlatHandler

#: What a bad schedule is refused for (the message names the field and what it expected).
_BAD_SCHEDULE = ("an invalid cron expression, an unknown timezone, a missing notebook, a "
                 "parameter the notebook does not declare or of the wrong type, a bad webhook or "
                 "address, an unknown kernel, or a notebook path outside the server root")


class SchedulesHandler(MLPlatHandler):
    @api("The owner's schedules, each with its next fire time and its last firing",
         response=ListSchedulesResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        services = await self.services()
        self.write_json(await self.call(services.schedules.list))

    @api("Make a schedule: a notebook (one papermill job) or a whole pipeline (target) fired on "
         "cron in a timezone, from the next slot after now (path relative to the server root)",
         body=CreateSchedule, response=DescribeSchedule, status=HTTPStatus.CREATED,
         errors=(409,), description=f"400 for {_BAD_SCHEDULE}; 409 when the owner already has "
         "a schedule of that name.")
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.parse_body(CreateSchedule)
        services = await self.services()
        self.write_json(await self.call(services.create_schedule, request), HTTPStatus.CREATED)


class SchedulePreviewHandler(MLPlatHandler):
    @api("The next fire times of a cron expression in a timezone (checks both), for a "
         "schedule not saved yet", query=PreviewScheduleQuery, response=PreviewScheduleResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(PreviewScheduleQuery)
        services = await self.services()
        times = await self.call(services.schedules.preview, query.cron, query.timezone,
                                query.count)
        self.write_json(PreviewScheduleResponse(cron=query.cron, timezone=query.timezone,
                                                next_fire_times=times))


class ScheduleHandler(MLPlatHandler):
    @api("One schedule (an id, a unique id prefix or its name): its next fire times and its "
         "newest firings", response=DescribeSchedule, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.schedules.describe, schedule_id))

    @api("Change a schedule; fields left out stay. A new cron or timezone moves the next slot "
         "to the first one after now", body=UpdateSchedule, response=DescribeSchedule,
         errors=(404, 409), description=f"400 for {_BAD_SCHEDULE}; 409 when the new name is "
         "taken.")
    @tornado.web.authenticated
    @authorized
    async def patch(self, schedule_id: str) -> None:
        request = self.parse_body(UpdateSchedule)
        services = await self.services()
        self.write_json(await self.call(services.update_schedule, schedule_id, request))

    @api("Delete a schedule: it never fires again (pending run-now firings are cancelled); "
         "its firings and their runs stay", response=DescribeSchedule, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def delete(self, schedule_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.delete_schedule, schedule_id))


class PauseScheduleHandler(MLPlatHandler):
    @api("Stop firing on cron (it can still be run now); idempotent", response=DescribeSchedule,
         errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def post(self, schedule_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.pause_schedule, schedule_id))


class ResumeScheduleHandler(MLPlatHandler):
    @api("Fire on cron again, from the next slot after now (slots while paused never fire)",
         response=DescribeSchedule, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def post(self, schedule_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.resume_schedule, schedule_id))


class RunScheduleHandler(MLPlatHandler):
    @api("Fire now (paused schedules too): the firing is queued `pending` and a scheduler "
         "runs it at its next poll (this server's own, when run_scheduler is on)",
         response=DescribeFiring, status=HTTPStatus.ACCEPTED, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def post(self, schedule_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.run_schedule, schedule_id),
                        HTTPStatus.ACCEPTED)


class ScheduleHistoryHandler(MLPlatHandler):
    @api("A schedule's firings, newest first: each with its run, its status and its executed "
         "notebook", query=ListFiringsQuery, response=ListFiringsResponse, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, schedule_id: str) -> None:
        query = self.parse_query(ListFiringsQuery)
        services = await self.services()
        self.write_json(await self.call(services.schedules.history, schedule_id, query.limit))
