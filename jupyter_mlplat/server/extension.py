"""``MLPlatApp``: the jupyter-server extension. Builds the services and holds the route table."""

from __future__ import annotations

import functools

from jupyter_server.extension.application import ExtensionApp

from .. import __version__
from ..config import MLPlat
from .handlers.endpoints import (
    EndpointHandler,
    EndpointsHandler,
    RollbackHandler,
    TokenHandler,
    TrafficHandler,
    TryEndpointHandler,
)
from .handlers.events import EventsHandler
from .handlers.meta import VersionHandler
from .handlers.models import (
    AliasHandler,
    LineageHandler,
    ModelHandler,
    ModelsHandler,
    ModelVersionHandler,
)
from .handlers.openapi import OpenAPIHandler
from .handlers.pipelines import PipelinesHandler
from .handlers.projects import (
    ProjectHandler,
    ProjectMemberHandler,
    ProjectsHandler,
    SharedEndpointHandler,
    SharedHandler,
    SharedModelHandler,
    SharedPipelineHandler,
    SharedScheduleHandler,
    ShareHandler,
)
from .handlers.runs import (
    CancelRunHandler,
    CompareRunsHandler,
    RerunStepHandler,
    ResumeRunHandler,
    RunHandler,
    RunMetricsHandler,
    RunsHandler,
    StepLogHandler,
    StepNotebookHandler,
)
from .handlers.schedules import (
    PauseScheduleHandler,
    ResumeScheduleHandler,
    RunScheduleHandler,
    ScheduleHandler,
    ScheduleHistoryHandler,
    SchedulePreviewHandler,
    SchedulesHandler,
)
from .openapi import API_PREFIX, Route, build_openapi
from .services import MLPlatServices

__all__ = ["API_PREFIX", "ROUTES", "MLPlatApp"]

#: The whole REST API: path templates under ``mlplat/api/`` and their handlers. The tornado
#: patterns, the OpenAPI document and the tests' every-route checks are all made from it.
ROUTES: list[Route] = [
    Route("version", VersionHandler),
    Route("openapi.json", OpenAPIHandler),
    Route("pipelines", PipelinesHandler),
    Route("runs", RunsHandler),
    Route("runs/{run_id}", RunHandler),
    Route("runs/{run_id}/cancel", CancelRunHandler),
    Route("runs/{run_id}/resume", ResumeRunHandler),
    Route("runs/{run_id}/rerun", RerunStepHandler),
    Route("runs/{run_id}/metrics", RunMetricsHandler),
    Route("runs/{run_id}/steps/{step}/log", StepLogHandler),
    Route("runs/{run_id}/steps/{step}/notebook", StepNotebookHandler),
    Route("compare", CompareRunsHandler),
    Route("events", EventsHandler),
    Route("models", ModelsHandler),
    Route("models/{name}", ModelHandler),
    Route("models/{name}/versions/{version}", ModelVersionHandler),
    Route("models/{name}/versions/{version}/lineage", LineageHandler),
    Route("models/{name}/aliases/{alias}", AliasHandler),
    Route("endpoints", EndpointsHandler),
    Route("endpoints/{name}", EndpointHandler),
    Route("endpoints/{name}/traffic", TrafficHandler),
    Route("endpoints/{name}/rollback", RollbackHandler),
    Route("endpoints/{name}/token", TokenHandler),
    Route("endpoints/{name}/try", TryEndpointHandler),
    Route("schedules", SchedulesHandler),
    # Before `schedules/{schedule_id}`: tornado takes the first pattern that matches.
    Route("schedules/preview", SchedulePreviewHandler),
    Route("schedules/{schedule_id}", ScheduleHandler),
    Route("schedules/{schedule_id}/pause", PauseScheduleHandler),
    Route("schedules/{schedule_id}/resume", ResumeScheduleHandler),
    Route("schedules/{schedule_id}/run", RunScheduleHandler),
    Route("schedules/{schedule_id}/history", ScheduleHistoryHandler),
    Route("projects", ProjectsHandler),
    Route("projects/{owner}/{project}", ProjectHandler),
    Route("projects/{owner}/{project}/members/{user}", ProjectMemberHandler),
    Route("shares/{kind}/{name}", ShareHandler),
    Route("shared", SharedHandler),
    Route("shared/models/{owner}/{name}", SharedModelHandler),
    Route("shared/endpoints/{owner}/{name}", SharedEndpointHandler),
    Route("shared/pipelines/{owner}/{name}", SharedPipelineHandler),
    Route("shared/schedules/{owner}/{name}", SharedScheduleHandler),
]


class MLPlatApp(ExtensionApp):
    """jupyter-mlplat's server extension. Settings live in the ``MLPlat`` config class."""

    name = "jupyter_mlplat"
    version = __version__
    load_other_extensions = True

    services: MLPlatServices | None = None

    def initialize_settings(self) -> None:
        """Build the services, once, into ``settings["mlplat_*"]`` for the handlers.

        Nothing slow happens here: the store is opened, the cluster and the serve process
        started, on first use; the scheduler loop (``run_scheduler``) starts on a thread.
        """
        config = MLPlat(parent=self)
        root_dir = self.serverapp.root_dir if self.serverapp is not None else "."
        self.services = MLPlatServices(config, root_dir)
        base_url = self.serverapp.base_url if self.serverapp is not None else "/"
        self.settings.update({
            "mlplat_config": config,
            "mlplat_services": self.services,
            "mlplat_openapi": functools.cache(
                functools.partial(build_openapi, ROUTES, version=__version__,
                                  base_url=base_url)),
        })
        self.log.info("jupyter_mlplat %s: acting for %s", __version__, config.owner)
        if config.run_scheduler:
            self.services.start_scheduler()

    def initialize_handlers(self) -> None:
        """The whole route table, one list, every pattern under ``mlplat/api/``."""
        self.handlers.extend((route.pattern, route.handler, route.kwargs) for route in ROUTES)

    async def stop_extension(self) -> None:
        """Stop the scheduler loop, cancel runs still going on, stop the cluster and the serve
        process."""
        if self.services is not None:
            await self.services.close()

