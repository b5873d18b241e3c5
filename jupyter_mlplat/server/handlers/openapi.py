"""``openapi.json``: the OpenAPI document, generated from the route table and the models."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from ..openapi import api
from .base import MLPlatHandler


class OpenAPIHandler(MLPlatHandler):
    @api("The OpenAPI 3.1 document of this API, generated from the route table and the "
         "pydantic models of jupyter_mlplat.schemas")
    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(self.settings["mlplat_openapi"]())
