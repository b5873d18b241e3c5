"""Handlers about the extension itself."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from ... import __version__
from ...config import current_owner
from .base import MLPlatHandler


class VersionHandler(MLPlatHandler):
    """``GET /mlplat/api/version``: the installed version and the owner this server acts for."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json({"version": __version__, "owner": current_owner()})
