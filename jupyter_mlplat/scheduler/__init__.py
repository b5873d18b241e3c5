"""Schedules: notebooks and pipelines fired on cron, exactly once, by one or more scheduler loops.

- :mod:`.cron`: cron expressions in a timezone, through daylight-saving changes;
- :mod:`.service`: ``ScheduleService``, what every front door calls (owner-scoped);
- :mod:`.loop`: ``SchedulerLoop``, leases and fencing in the store, firing, catch-up;
- :mod:`.runner`: running a notebook (papermill) or a pipeline (the executor) for a firing;
- :mod:`.isolation`: what a firing's kernels get (an allow-listed environment, an owner-scoped
  store);
- :mod:`.guard`: where an owner's notebooks may be (``--homes``) and which kernels may run;
- :mod:`.hardening`: a scheduler for several owners and its Dask workers made non-dumpable, so
  its kernels cannot read their environment or memory;
- :mod:`.health`: ``GET /health`` of a scheduler process (``--health-port``);
- :mod:`.liveness`: whether the scheduler process running a firing is still there;
- :mod:`.actions`: ``deploy_if_blessed`` after a successful firing;
- :mod:`.notify`: webhook and e-mail notifications;
- :mod:`.embedded`: the loop inside the Jupyter server (``start_scheduler``).

Nothing heavy is imported here.
"""

from __future__ import annotations
