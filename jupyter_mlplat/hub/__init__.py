"""Multi-user JupyterHub support: ``jupyter mlplat service`` and what it is built from.

Under JupyterHub, user servers, the CLI and step kernels hold no database credentials: they reach
the store and the artifacts through ``jupyter mlplat service``, a hub service, over HTTP with the
user's hub token (``jupyter_mlplat.store.remote``). The service opens the SQL store scoped to the
authenticated hub user for every call; a client never names an owner.

- ``protocol``: what crosses the wire (the exposed store methods, error kinds, the JSON codec);
- ``policy``: which store methods are exposed and how their arguments are checked;
- ``schedules``: what a user's schedule rows may name (notebooks, kernels, webhooks);
- ``dispatch``: one call of a store method for one owner (no HTTP in here);
- ``auth``: the hub user of a request (``jupyterhub.services.auth.HubAuth``);
- ``service``: the tornado application; ``server``: running it (``run_service``);
- ``artifacts``: each owner's own folder of the shared artifact store;
- ``serving``: ``jupyter mlplat serve --shared``, every user's endpoints in one process.
"""
