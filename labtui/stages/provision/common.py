"""What the plan asks of the Provision stage, and the base classes of its steps."""

from __future__ import annotations

from labtui.errors import LabError
from labtui.execute import ALREADY, Executor, Outcome
from labtui.model import NodeSpec, ProvisionSpec
from labtui.net.requirements import NodeRef, derive_requirements
from labtui.provision_plan import Names, lab_tag
from labtui.stages.cloud import networking
from labtui.steps import Action, CheckResult, Step, StepContext

SCOPE = "provision"
FIELD = "Provision"  # how the plan's block is named on screen


def spec(ctx: StepContext) -> ProvisionSpec | None:
    plan = ctx.plan
    return plan.provision if plan else None


def skip_reason(ctx: StepContext) -> str | None:
    plan = ctx.plan
    if plan is None:
        return "the plan is not saved yet"
    if not plan.cloud:
        return "the lab adopts machines you already have (no cloud in the plan)"
    if plan.provision is None:
        return ("the lab adopts existing machines of the cloud (the plan has no provision block); "
                "the Cloud stage finds them by name or address")
    return None


def lab_names(ctx: StepContext) -> Names:
    return Names(ctx.session.name)


def lab_tag_of(ctx: StepContext) -> str:
    return lab_tag(ctx.session.name)


def requirements(ctx: StepContext) -> list:
    """What the network must carry, from the same engine as the cloud check."""
    plan = ctx.plan
    subnet = plan.node_subnet if plan else None
    refs = [NodeRef(n.name, n.role.value, n.address, subnet) for n in (plan.nodes if plan else [])]
    return derive_requirements(networking(ctx), refs)


def bad_input(field: str, message: str, hint: str, code: str = "invalid") -> LabError:
    """A problem with one of the plan's provision inputs (named as on screen). `input_field` tells a
    dry run it is the plan's input, to be named once, not a step that cannot be checked yet."""
    err = LabError(f"{FIELD}: {field}: {message}", hint, code=code)
    err.input_field = field  # type: ignore[attr-defined]
    return err


def plan_nodes(ctx: StepContext) -> list[NodeSpec]:
    plan = ctx.plan
    if plan is None or not plan.nodes:
        raise LabError(f"lab {ctx.session.name} has no nodes", "finish the plan's Nodes step first", code="no-nodes")
    return plan.nodes


def preview_all(ctx: StepContext, actions: list[Action]) -> tuple[bool, list[Outcome]]:
    outcomes = Executor(ctx, step="provision").preview(actions)
    return all(o.status == ALREADY for o in outcomes), outcomes


class ProvisionStep(Step):
    def not_applicable(self, ctx: StepContext) -> str | None:
        """Why the step does not apply, from the saved plan alone (no cloud read): shown as soon as the
        lab opens. None while the plan is not saved (the step may apply then)."""
        return skip_reason(ctx) if ctx.session.plan else None

    def skip(self, ctx: StepContext) -> CheckResult | None:
        reason = skip_reason(ctx)
        return CheckResult(False, reason, skip=True) if reason else None


class ActionsStep(ProvisionStep):
    """A step whose work is a list of catalogue Actions: done when every one is already in effect."""

    def actions(self, ctx: StepContext) -> list[Action]:
        return []

    def check(self, ctx: StepContext) -> CheckResult:
        skip = self.skip(ctx)
        if skip:
            return skip
        acts = self.actions(ctx)
        if not acts:
            return CheckResult(True, self.nothing(ctx))
        done, outcomes = preview_all(ctx, acts)
        pending = [o.action.title for o in outcomes if o.status != "already"]
        return CheckResult(done, "all exist, created by this lab" if done else f"{len(pending)} to create")

    def nothing(self, ctx: StepContext) -> str:
        return "nothing to create"

    def plan(self, ctx: StepContext) -> list[Action]:
        return self.actions(ctx)
