"""The serve process: loaded model versions, micro-batching, endpoints and their HTTP front.

Layers, as in MLServer: thin tornado handlers (:mod:`.app`) call :class:`.service.ServingService`,
which routes to :class:`.model.ServedModel` runtimes kept in a :class:`.repository.ModelRepository`.
:mod:`.server` runs it as its own process (``jupyter mlplat serve``).
"""
