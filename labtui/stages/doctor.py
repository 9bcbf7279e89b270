"""The doctor stage: cross-check Calico's pool mode x node subnets x security groups x ports, prove it
with probe pods, explain, fix with approval, verify; then write the lab's report. Cheap to import:
the adapters are imported inside the steps."""

from __future__ import annotations

from typing import Any

from labtui.doctor.run import fix_actions, run_doctor, summary_line
from labtui.errors import LabError
from labtui.paths import session_dir, write_private
from labtui.report import session_report
from labtui.steps import Action, CheckResult, InputField, Risk, Step, StepContext, Wizard

FIX_CHOICES = [
    ("", "the recommended option"),
    ("1", "1. IPIP Always + IP protocol 4 between the nodes"),
    ("2", "2. VXLAN Always + UDP 4789 between the nodes"),
    ("3", "3. the pod CIDR as an allowed-address-pair on every node port"),
    ("4", "4. port security off on the node ports (discouraged)"),
]


def _diagnose(ctx: StepContext, live: bool = False) -> Any:
    """check() runs on every resume: it only reads (no probe pods); verify() adds the live proof."""
    diag = run_doctor(ctx, live=live and bool(ctx.inputs.get("doctor_live", True)))
    ctx.memo.doctor_diag = diag
    return diag


class DiagnoseStep(Step):
    id = "doctor"
    title = "Pods talk across nodes"
    why = (
        "Pods on one node talk; pods on different nodes only talk if the cloud lets their packets through.\n"
        "The doctor reads the live Calico pool mode, the subnets the nodes are on, each node port's security\n"
        "groups, port security and allowed-address-pairs, works out for every pair of nodes which packet\n"
        "leaves (direct with a pod source, IP-in-IP or VXLAN) and whether OpenStack drops it, then proves it\n"
        "with a probe pod on each node and a short tcpdump. A fix opens the network first, then switches Calico."
    )
    fields = [
        InputField("doctor_fix", "Fix to apply when something is wrong", kind="choice", default="",
                   choices=FIX_CHOICES, required=False,
                   help="the doctor explains every option; IPIP Always + protocol 4 is the usual one on OpenStack"),
        InputField("doctor_live", "Prove it with probe pods and a capture", kind="bool", default=True, required=False),
    ]
    expect = ("Diagnosis: healthy, every pod path passing. Before a fix: the finding (e.g. pod traffic leaving "
              "unencapsulated and dropped by anti-spoofing), why, and the fix options with their exact commands.")
    by_hand = ("calicoctl get ippool -o wide   # the pool's IPIPMODE / VXLANMODE\n"
               "openstack port show PORT -c security_group_ids -c port_security_enabled -c allowed_address_pairs\n"
               "openstack security group rule list GROUP   # is IP protocol 4 allowed from the group?\n"
               "tcpdump -ni any 'ip proto 4'   # on a node, while pinging a pod on another node")
    glossary = ("IPIP", "VXLAN", "CrossSubnet", "anti-spoofing", "allowed-address-pairs", "security group", "pod CIDR",
                "IP pool")
    hint = "read the findings above; choose a fix option in the field above, or fix it by hand and run the step again"

    def check(self, ctx: StepContext, live: bool = False) -> CheckResult:
        try:
            diag = _diagnose(ctx, live)
        except LabError as exc:
            return CheckResult(False, exc.render())
        return CheckResult(diag.exit_code == 0, summary_line(diag), {"status": diag.status, "exit_code": diag.exit_code})

    def plan(self, ctx: StepContext) -> list[Action]:
        diag = ctx.memo.doctor_diag or _diagnose(ctx)
        if diag.exit_code == 0:
            return []
        if not diag.options:
            if diag.exit_code == 2:
                raise LabError("the doctor could not check: " + "; ".join([u.line() for u in diag.unchecked if not u.skipped][:3]
                                                               + [u.line() for u in diag.unchecked if u.skipped]),
                               "make the missing source reachable (kubeconfig, cloud, SSH) and run the step again")
            raise LabError("the doctor found problems it cannot fix by itself: "
                           + "; ".join(f.title for f in diag.problems[:3]),
                           "read the findings on the Doctor screen (D) and follow their explanation")
        want = str(ctx.inputs.get("doctor_fix") or "")
        opt = diag.option(want) if want else next((o for o in diag.options if o.recommended), diag.options[0])
        if not opt.available:
            raise LabError(f"fix option {opt.number} is not possible here: {opt.unavailable_reason}",
                           "choose another fix option")
        ctx.memo.doctor_option = opt
        return fix_actions(ctx, diag, opt)

    def verify(self, ctx: StepContext) -> CheckResult:
        return self.check(ctx, live=True)  # after a fix: prove it with probe pods and a capture


class ReportStep(Step):
    id = "report"
    title = "Write the lab report"
    why = (
        "A Markdown record of this lab: the plan, every step, what the doctor found with its explanation\n"
        "and evidence, and every change labtui made with the command that reverts it. Share it with your\n"
        "study group."
    )
    expect = "A report.md in the lab's directory: the plan, each step, the findings and every change with its revert."
    by_hand = "labtui report LAB -o report.md"

    def _path(self, ctx: StepContext):
        return session_dir(ctx.session.name, ctx.store.home) / "report.md"

    def check(self, ctx: StepContext) -> CheckResult:
        p = self._path(ctx)
        return CheckResult(p.exists(), str(p) if p.exists() else "not written yet")

    def plan(self, ctx: StepContext) -> list[Action]:
        p = self._path(ctx)

        def write(c: StepContext, a: Action) -> str:
            write_private(p, session_report(c.store, c.session.name))
            return str(p)

        return [Action(id="write-report", title="Write the report", kind="local", risk=Risk.LOCAL,
                       command=f"labtui report {ctx.session.name} -o {p}", run=write)]


def build() -> Wizard:
    return Wizard("doctor", "Doctor", [DiagnoseStep(), ReportStep()])
