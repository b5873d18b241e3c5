"""``MLPlatApp``: the jupyter-server extension. Builds the services and holds the route table."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp

from .. import __version__
from ..config import MLPlat
from .handlers.meta import VersionHandler

#: URL prefix of every REST route, below the server's base_url.
API_PREFIX = "mlplat/api"


class MLPlatApp(ExtensionApp):
    """jupyter-mlplat's server extension. Settings live in the ``MLPlat`` config class."""

    name = "jupyter_mlplat"
    version = __version__
    load_other_extensions = True

    def initialize_settings(self) -> None:
        """Build the services, once, into ``settings["mlplat_*"]`` for the handlers."""
        config = MLPlat(parent=self)
        self.settings.update({"mlplat_config": config})
        self.log.info("jupyter_mlplat %s: store %s", __version__, config.store_url)

    def initialize_handlers(self) -> None:
        """The whole route table, one list, every pattern under ``mlplat/api/``."""
        routes = [
            (rf"/{API_PREFIX}/version", VersionHandler),
        ]
        self.handlers.extend(routes)
