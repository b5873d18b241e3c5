"""Handlers about the extension itself."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from ... import __version__
from ...schemas import DescribeExtension
from ..openapi import api
from .base import MLPlatHandler


class VersionHandler(MLPlatHandler):
    """``GET /mlplat/api/version``: the installed version and the owner this server acts for."""

    @api("The installed version and the owner this server acts for",
         response=DescribeExtension)
    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(DescribeExtension(version=__version__, owner=self.owner))
