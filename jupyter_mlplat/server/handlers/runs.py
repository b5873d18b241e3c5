"""``runs``: start, list, inspect, cancel, resume and re-run pipeline runs; logs, executed
notebooks and metrics of their steps; ``compare`` runs side by side."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import tornado.web
from jupyter_server.auth.decorator import authorized
from tornado.iostream import StreamClosedError

from ...schemas import (
    CompareRuns,
    CompareRunsQuery,
    CreateRun,
    DescribeRun,
    ListMetricsResponse,
    ListRunsQuery,
    ListRunsResponse,
    RerunStep,
    StepLogQuery,
)
from ..openapi import api
from .base import MLPlatHandler

#: How often a followed log is read again while its step runs.
FOLLOW_INTERVAL = 0.5
TEXT = "text/plain; charset=utf-8"


class RunsHandler(MLPlatHandler):
    @api("The owner's runs, newest first", query=ListRunsQuery, response=ListRunsResponse)
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(ListRunsQuery)
        services = await self.services()
        runs = await self.call(services.runs.list, limit=query.limit, pipeline=query.pipeline,
                               status=query.status)
        self.write_json(ListRunsResponse(runs=runs))

    @api("Start a run of a notebook (path relative to the server root); it goes on in the "
         "background and its progress is pushed on `events`", body=CreateRun,
         response=DescribeRun, status=HTTPStatus.ACCEPTED, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        request = self.parse_body(CreateRun)
        services = await self.services()
        self.write_json(await self.call(services.start_run, request), HTTPStatus.ACCEPTED)


class RunHandler(MLPlatHandler):
    @api("One run (an id or a unique prefix): steps, timings, cache, params, metrics, "
         "outputs, models, errors", response=DescribeRun, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.runs.describe, run_id))


class CancelRunHandler(MLPlatHandler):
    @api("Cancel a running run: its kernels are interrupted; answers once it has stopped",
         response=DescribeRun, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.background.cancel, run_id))


class ResumeRunHandler(MLPlatHandler):
    @api("Resume a failed, cancelled or interrupted run: only the steps that did not succeed "
         "run again (refused for a run of a notebook outside the server root)",
         response=DescribeRun, status=HTTPStatus.ACCEPTED, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.resume_run, run_id), HTTPStatus.ACCEPTED)


class RerunStepHandler(MLPlatHandler):
    @api("A new run of this run's pipeline (its code and parameters) executing one step, or "
         "a step and its descendants; steps not selected give the outputs this run had "
         "(refused for a run of a notebook outside the server root)", body=RerunStep,
         response=DescribeRun, status=HTTPStatus.ACCEPTED, errors=(404, 409))
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        request = self.parse_body(RerunStep)
        services = await self.services()
        self.write_json(await self.call(services.rerun_step, run_id, request),
                        HTTPStatus.ACCEPTED)


class RunMetricsHandler(MLPlatHandler):
    @api("Every metric point of a run (points with `step` set form curves)",
         response=ListMetricsResponse, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        services = await self.services()
        self.write_json(await self.call(services.runs.list_metrics, run_id))


class StepLogHandler(MLPlatHandler):
    _gone = False  # the client hung up while the log was followed

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    @api("The cell output of one step as plain text; with follow=true it streams until the "
         "step (or its run) has finished", query=StepLogQuery, content_type="text/plain", errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, step: str) -> None:
        query = self.parse_query(StepLogQuery)
        services = await self.services()
        text, offset, finished = await self.call(services.runs.read_step_log, run_id, step)
        self.set_header("Content-Type", TEXT)
        if not query.follow:
            self.finish(text, set_content_type=TEXT)
            return
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            while True:
                if text:
                    self.write(text)
                    await self.flush()
                if finished or self._gone:
                    break
                await asyncio.sleep(FOLLOW_INTERVAL)
                text, offset, finished = await self.call(services.runs.read_step_log, run_id,
                                                         step, offset)
        except StreamClosedError:
            return  # the client went away
        if not self._gone:
            self.finish(set_content_type=TEXT)


class StepNotebookHandler(MLPlatHandler):
    @api("The executed notebook of one step (nbformat JSON), failed steps included",
         errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str, step: str) -> None:
        services = await self.services()
        notebook = await self.call(services.runs.step_notebook, run_id, step)
        self.finish(json.dumps(notebook), set_content_type="application/x-ipynb+json")


class CompareRunsHandler(MLPlatHandler):
    @api("Two or more runs side by side: parameters and metrics, with what differs",
         query=CompareRunsQuery, response=CompareRuns, errors=(404,))
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.parse_query(CompareRunsQuery)
        services = await self.services()
        self.write_json(await self.call(services.runs.compare, query.run_ids()))
