"""The sweeper: nothing stays in a task state.

A task whose message was lost (a process killed between its commit and its send, a broker
that refused it) makes no progress; after `task_redrive_after` seconds, and again every as
long, it is sent again. A task past its timeout (`lifecycle.TIMEOUTS`) is ended with the
event the table gives for it. Every step is conditional, so a duplicate of a message still
in flight changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from cirrus.compute import states
from cirrus.compute.lifecycle import TIMEOUTS, transition
from cirrus.compute.workflows import build, delete, power, rebuild, resize, shelve, snapshot
from cirrus.compute.workflows.deps import WorkflowDeps, log
from cirrus.context import RequestContext
from cirrus.db.models import Instance, utcnow

MAX_REMEMBERED = 10000  # (instance, task) pairs re-driven, before the memory is reset


class Sweeper:
    def __init__(self, deps: WorkflowDeps) -> None:
        self.deps = deps
        self._redriven: dict[tuple[str, str], float] = {}

    def sweep(self) -> int:
        """Re-drive stalled tasks and end those past their timeout. Returns how many ended."""
        settings = self.deps.settings
        now = utcnow()
        cutoffs = {name: now - dt.timedelta(seconds=getattr(settings, name))
                   for name in {timeout for timeout, _event in TIMEOUTS.values()}}
        redrive_cutoff = now - dt.timedelta(seconds=settings.task_redrive_after)
        with self.deps.db.reader() as s:
            stuck = cast("list[tuple[str, str, dt.datetime]]", s.execute(
                select(Instance.uuid, Instance.task_state, Instance.task_started_at)
                .where(Instance.deleted.is_(False), Instance.task_state.is_not(None),
                       Instance.task_started_at < max(*cutoffs.values(), redrive_cutoff))
            ).all())
        ended = 0
        ctx = RequestContext.admin()
        self.reclaim(ctx)  # comp-a
        for uuid, task, started in stuck:
            if started < cutoffs[TIMEOUTS[task][0]]:
                ended += self._end_task(ctx, uuid, task)
            elif started < redrive_cutoff and self._due_for_redrive(uuid, task):
                log.warning("instance %s: %s has made no progress since %s; sending it again",
                            uuid, task, started)
                self._redrive(ctx, uuid, task)
        shelve.offload_due(self.deps)  # shelve (comp-b): shelved_offload_time passed
        resize.confirm_due(self.deps)  # resize (comp-b): resize_confirm_window passed
        return ended

    def reclaim(self, ctx: RequestContext) -> list[str]:
        """Delete the servers soft-deleted longer than `reclaim_instance_interval` (Nova's
        _reclaim_queued_deletes); the uuids it deleted (comp-a)."""
        interval = self.deps.settings.reclaim_instance_interval
        if interval <= 0:
            return []
        cutoff = utcnow() - dt.timedelta(seconds=interval)
        with self.deps.db.reader() as s:
            due = list(s.scalars(select(Instance.uuid).where(
                Instance.deleted.is_(False), Instance.vm_state == states.SOFT_DELETED,
                Instance.task_state.is_(None), Instance.deleted_at < cutoff)))
        reclaimed = []
        def start(s: Session, uuid: str) -> int:
            return transition(s, uuid, "reclaim", vm_state=states.SOFT_DELETED,
                              task_state=None, where=(Instance.deleted.is_(False),),
                              task_started_at=utcnow())

        for uuid in due:
            if self.deps.db.run(functools.partial(start, uuid=uuid)):
                log.info("instance %s: soft-deleted for over %d s, reclaiming it", uuid,
                         interval)
                delete.delete_instance(self.deps, ctx, {"uuid": uuid})
                reclaimed.append(uuid)
        return reclaimed

    def _due_for_redrive(self, uuid: str, task: str) -> bool:
        """Once per `task_redrive_after` per (instance, task), in this process."""
        now = time.monotonic()
        key = (uuid, task)
        if now - self._redriven.get(key, -math.inf) < self.deps.settings.task_redrive_after:
            return False
        self._redriven[key] = now
        if len(self._redriven) > MAX_REMEMBERED:
            self._redriven.clear()
        return True

    def _redrive(self, ctx: RequestContext, uuid: str, task: str) -> None:
        if task in build.BUILD_TASKS:
            build.build(self.deps, ctx, uuid)
        elif task == states.DELETING:
            delete.delete_instance(self.deps, ctx, {"uuid": uuid})
        elif task in shelve.TASKS:  # shelve (comp-b)
            shelve.redrive(self.deps, ctx, uuid, task)
        elif task in resize.TASKS:  # resize (comp-b)
            resize.redrive(self.deps, ctx, uuid, task)
        elif task in power.ACTION_OF_TASK or task in rebuild.TASKS:  # comp-a: rebuild
            power.power_action(self.deps, ctx, {"uuid": uuid, "task": task})

    def _end_task(self, ctx: RequestContext, uuid: str, task: str) -> int:
        timeout, event = TIMEOUTS[task]
        if event == "build_failed":
            build.fail_build(self.deps, ctx, uuid, f"Build timed out after "
                             f"{getattr(self.deps.settings, timeout):g} s in task_state {task}.")
        elif event == "deleted":
            delete.delete_instance(self.deps, ctx, {"uuid": uuid})
        elif task in shelve.TASKS:  # shelve (comp-b)
            shelve.timed_out(self.deps, ctx, uuid, task)
        elif task in resize.TASKS:  # resize (comp-b)
            resize.timed_out(self.deps, ctx, uuid, task)
        else:
            if task == states.IMAGE_SNAPSHOT:  # its image will get no data now
                snapshot.discard_unfinished(self.deps, uuid)
            power.task_result(self.deps, ctx, {"uuid": uuid, "task": task, "ok": False,
                                               "host": None, "error": f"{task} timed out"})
        return 1
