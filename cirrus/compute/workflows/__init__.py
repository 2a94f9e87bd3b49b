"""The conductor's workflows, one module per operation on an instance.

Each workflow is a set of functions over explicit dependencies (`WorkflowDeps`); every
change of vm_state or task_state goes through `cirrus.compute.lifecycle.transition`, so a
step that lost a race (a delete during a build, a second conductor, a late message)
changes nothing. Resize, evacuate and transfer will be modules beside these.
"""

from __future__ import annotations

from cirrus.compute.workflows.deps import WorkflowDeps

__all__ = ["WorkflowDeps"]
