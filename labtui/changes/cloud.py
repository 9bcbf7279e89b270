"""The cloud resources the Provision stage creates, as change kinds.

Each kind renders the exact `openstack ...` command and the API call (on the Action), tells
whether its resource already exists *created by this lab* (by the lab's tag, else the lab's
description for a resource killed between its create and its tag; a keypair by its public key),
creates it, and reverts by deleting it (404 = already gone).

A resource with the lab's name that this lab did not create is refused, never adopted: the
message names it and what to do. A resource of this lab that exists but is not in the lab's
record (the previous run was killed after the create) is recorded on the next run instead of
being created a second time.

Action.data: lab, tag, name, `attrs` (the create body without the ids of other resources) and
`refs` ({attr: [kind, name]}: ids looked up at run time, since the network or the group may be
created earlier in the same run).
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from typing import Any

from labtui.adapters import provision as p
from labtui.adapters.openstack import CloudConnection, group_rules, session_cloud
from labtui.changes import Applied, AppliedThenFailed, ChangeKind, register
from labtui.errors import LabError
from labtui.net.fixes import RuleFix, find_same_rule, lab_rule_fix
from labtui.provision_plan import DESCRIPTION, TAG_PREFIX, RuleSpec
from labtui.steps import Action, Risk

SEEN_SECONDS = 20.0
_READ_LOCK = threading.Lock()  # one read of a group's rules serves the checks made together
_RESOLVE_LOCK = threading.RLock()  # one lookup of a name serves the actions resolving it together

TITLES = {"network": "network", "subnet": "subnet", "router": "router", "security-group": "security group",
          "port": "port", "server": "server", "floating-ip": "floating IP", "keypair": "keypair",
          "sg-rule": "security-group rule", "router-interface": "router interface"}


def _conn(ctx: Any) -> CloudConnection:
    return session_cloud(ctx)


def _cache(ctx: Any) -> dict[tuple[str, str], str]:
    cache = getattr(ctx.memo, "provision_ids", None)
    if cache is None:
        cache = {}
        ctx.memo.provision_ids = cache  # per-run: names -> ids of this lab's resources
    return cache


def ours(info: dict[str, Any], tag: str, lab: str) -> bool:
    """Created by this lab: its tag, or (killed between create and tag) the lab's description."""
    return tag in (info.get("tags") or []) or (info.get("description") or "") == DESCRIPTION.format(lab=lab)


def clash(kind: str, name: str, rid: str, cloud: str, lab: str) -> LabError:
    noun = TITLES.get(kind, kind)
    return LabError(f"cloud {cloud}: a {noun} named {name} ({rid}) already exists and was not created by lab {lab}",
                    f"labtui never adopts or changes it: rename or delete it yourself (`openstack {noun} show {rid}`), "
                    "or give this lab another name", code="name-clash")


def recorded_ids(ctx: Any, kind: str) -> set[str]:
    return {str((c.revert_data or {}).get("id")) for c in ctx.store.changes(ctx.session.id)
            if c.kind == kind and not c.reverted}


def resolve(ctx: Any, kind: str, name: str, lab: str, tag: str) -> str:
    """The id of this lab's resource `name` (created earlier in this run or before)."""
    cache = _cache(ctx)
    if (kind, name) in cache:
        return cache[(kind, name)]
    with _RESOLVE_LOCK:
        return _resolve(ctx, kind, name, lab, tag)


def _resolve(ctx: Any, kind: str, name: str, lab: str, tag: str) -> str:
    cache = _cache(ctx)
    if (kind, name) in cache:  # found by another thread meanwhile
        return cache[(kind, name)]
    c = _conn(ctx)
    # a resource found missing in the last seconds of this run is not looked up again (the checks of
    # the rules of a group that is not created yet); creating it puts its id in the cache above
    missing = ctx.memo.bucket("provision_missing")
    hit = missing.get((kind, name))
    found = [] if hit is not None and time.monotonic() - hit < SEEN_SECONDS else \
        [o for o in p.find(c, kind, name=name) if ours(o, tag, lab)]
    if not found:
        missing[(kind, name)] = hit if hit is not None and time.monotonic() - hit < SEEN_SECONDS else time.monotonic()
        raise LabError(f"cloud {c.name}: the lab's {TITLES[kind]} {name} does not exist",
                       "run the Provision stage from its first step (labtui provision NAME)", code="missing-resource")
    rid = str(found[0]["id"])
    cache[(kind, name)] = rid
    return rid


def unless_parent_missing(look: Any) -> Any:
    """`look()`, or False when a resource it hangs on is not created yet (then neither is this one: an
    answer for the "already so?" check, not a warning)."""
    try:
        return look()
    except LabError as exc:
        if exc.code == "missing-resource":
            return False
        raise


class CloudResource(ChangeKind):
    """A named, tagged resource of the lab's project."""

    layer = "cloud"
    res: str = ""  # adapters.provision.KINDS key
    taggable = True

    # -- finding
    def existing(self, ctx: Any, action: Action) -> dict[str, Any] | None:
        """This lab's resource, or None; raises the name clash for someone else's. A lookup made in
        the last seconds of this run (the step's check, the executor's pass) is not made again;
        run() forgets it, so what follows a create reads the cloud afresh."""
        seen = getattr(ctx.memo, "provision_seen", None)
        if seen is None:
            seen = ctx.memo.provision_seen = {}
        hit = seen.get(action.id)
        if hit is not None and time.monotonic() - hit[0] < SEEN_SECONDS:
            cached: dict[str, Any] | None = hit[1]
            return cached
        info = self.lookup(ctx, action)
        seen[action.id] = (time.monotonic(), info)
        return info

    def forget(self, ctx: Any, action: Action) -> None:
        seen = getattr(ctx.memo, "provision_seen", None)
        if seen:
            seen.pop(action.id, None)

    def lookup(self, ctx: Any, action: Action) -> dict[str, Any] | None:
        d = action.data
        c = _conn(ctx)
        for o in p.find(c, self.res, name=d["name"]):
            if not ours(o, d["tag"], d["lab"]):
                raise clash(self.res, d["name"], o["id"], c.name, d["lab"])
            return o
        return None

    def applied(self, ctx: Any, action: Action) -> bool | None:
        info = unless_parent_missing(lambda: self.existing(ctx, action))  # a floating IP's port
        if not info:
            return False
        if info["id"] not in recorded_ids(ctx, self.kind):
            return None  # ours but not recorded (the last run was killed): run() records it
        _cache(ctx)[(self.res, action.data["name"])] = info["id"]
        return True

    def body(self, ctx: Any, action: Action) -> dict[str, Any]:
        d = action.data
        attrs = dict(d.get("attrs") or {})
        for attr, (kind, name) in (d.get("refs") or {}).items():
            rid = resolve(ctx, kind, name, d["lab"], d["tag"])
            attrs[attr] = [rid] if attr in (d.get("list_refs") or ()) else rid
        return attrs

    def run(self, ctx: Any, action: Action) -> Applied:
        d = action.data
        c = _conn(ctx)
        info = self.existing(ctx, action)
        self.forget(ctx, action)
        note = ""
        if info is not None:
            if info["id"] in recorded_ids(ctx, self.kind):
                _cache(ctx)[(self.res, d["name"])] = info["id"]
                return Applied(False, note="exists, created by this lab", result=info)
            note = "found from an interrupted run: recorded now, not created again"
        else:
            info = p.create(c, self.res, self.body(ctx, action), api=action.api or "", command=action.command,
                            name=d["name"])
        if self.taggable and d["tag"] not in (info.get("tags") or []):
            try:
                p.tag(c, self.res, info["id"], sorted(set(info.get("tags") or []) | {d["tag"]}))
            except LabError as exc:  # the resource exists: recorded with its delete, and said
                raise AppliedThenFailed(
                    LabError(f"{exc.message} (the {TITLES[self.res]} {d['name']} ({info['id']}) was created before it)",
                             exc.hint, code=exc.code),
                    Applied(True, {"id": info["id"], "name": d["name"], "lab": d["lab"], "tag": d["tag"]}, result=info,
                            revert_command=self.delete_command(info["id"]), target=d["name"],
                            note="created, then tagging it failed")) from exc
            info = dict(info, tags=sorted(set(info.get("tags") or []) | {d["tag"]}))
        _cache(ctx)[(self.res, d["name"])] = info["id"]
        ctx.memo.bucket("provision_missing").pop((self.res, d["name"]), None)
        # the API's own answer to the create is what the step's verify sees (no second read of it)
        seen = getattr(ctx.memo, "provision_seen", None)
        if seen is None:
            seen = ctx.memo.provision_seen = {}
        seen[action.id] = (time.monotonic(), info)
        return Applied(True, {"id": info["id"], "name": d["name"], "lab": d["lab"], "tag": d["tag"]}, result=info,
                       revert_command=self.delete_command(info["id"]), target=d["name"], note=note)

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        return None  # the create returned the resource; the stage's check reads them all again

    def delete_command(self, rid: str) -> str:
        return f"openstack {TITLES[self.res]} delete {rid}"

    def revert(self, ctx: Any, change: Any) -> str:
        data = change.revert_data or {}
        rid = data.get("id")
        if not rid:
            raise LabError(f"change #{change.id} ({change.description}) has no resource id", "delete it by hand",
                           code="no-revert")
        c = _conn(ctx)
        info = p.get(c, self.res, rid)
        if info is None:
            return "already gone"
        if self.taggable and not ours(info, data.get("tag", ""), data.get("lab", "")):
            raise LabError(f"cloud {c.name}: {TITLES[self.res]} {rid} no longer carries lab {data.get('lab')}'s tag",
                           "labtui deletes only what this lab created; delete it by hand if it is yours",
                           code="not-ours")
        self.before_delete(ctx, c, rid, info)
        if not p.delete(c, self.res, rid, command=change.revert_command):
            return "already gone"
        self.after_delete(ctx, c, rid)
        return f"deleted {TITLES[self.res]} {info.get('name') or rid}"

    def before_delete(self, ctx: Any, c: Any, rid: str, info: dict[str, Any]) -> None:
        pass

    def after_delete(self, ctx: Any, c: Any, rid: str) -> None:
        pass


@register
class Network(CloudResource):
    kind = "cloud.network"
    res = "network"


@register
class Subnet(CloudResource):
    kind = "cloud.subnet"
    res = "subnet"


@register
class Router(CloudResource):
    kind = "cloud.router"
    res = "router"

    def before_delete(self, ctx: Any, c: Any, rid: str, info: dict[str, Any]) -> None:
        # interfaces on the lab's own subnets (an interrupted run may not have recorded them)
        subnets = p.router_interface_subnets(c, rid)
        tag = _tag_of(info)
        mine = {s["id"] for s in p.find(c, "subnet", tag=tag)} if tag else set()
        for subnet in subnets:
            if subnet in mine:
                p.remove_router_interface(c, rid, subnet)


def _tag_of(info: dict[str, Any]) -> str | None:
    return next((t for t in info.get("tags") or [] if t.startswith(TAG_PREFIX)), None)


@register
class SecurityGroup(CloudResource):
    kind = "cloud.security-group"
    res = "security-group"


@register
class Port(CloudResource):
    kind = "cloud.port"
    res = "port"


@register
class FloatingIP(CloudResource):
    """A floating IP on a node's port; found by the lab's tag and the port it serves."""

    kind = "cloud.floating-ip"
    res = "floating-ip"

    def lookup(self, ctx: Any, action: Action) -> dict[str, Any] | None:
        d = action.data
        c = _conn(ctx)
        port_id = resolve(ctx, "port", d["port_name"], d["lab"], d["tag"])
        # by the port (not by the tag: a run killed between the create and the tag left it untagged)
        for o in p.find(c, "floating-ip", port_id=port_id):
            if not ours(o, d["tag"], d["lab"]):
                raise LabError(f"cloud {c.name}: the lab's port {d['port_name']} already has floating IP "
                               f"{o.get('address')} ({o['id']}), which lab {d['lab']} did not create",
                               "labtui never adopts or changes it: detach it (`openstack floating ip unset --port "
                               f"{o['id']}`) or set floating_ip: false in the plan", code="name-clash")
            return o
        return None

    def run(self, ctx: Any, action: Action) -> Applied:
        applied = super().run(ctx, action)
        if applied.changed:
            applied.target = action.data["name"]
            applied.note = (applied.note + "; " if applied.note else "") + f"address {applied.result.get('address')}"
        return applied

    def delete_command(self, rid: str) -> str:
        return f"openstack floating ip delete {rid}"


@register
class Server(CloudResource):
    """One server per plan node. run() asks for it (the POST goes to a small pool, so the four
    servers' POSTs overlap) and returns at once; the stage then waits for every POST and for all
    servers to become ACTIVE together (`join`). The record names the server (lab tag + name): the
    id is known only after the POST, and the record exists before the server does, so a run killed
    mid-POST leaves nothing untracked. A server of this lab in ERROR is deleted and asked for again
    (its old record marked reverted): the retry recreates only it."""

    kind = "cloud.server"
    res = "server"
    taggable = False  # Nova takes the tags in the create (microversion 2.52)

    def recorded(self, ctx: Any, info: dict[str, Any]) -> bool:
        for c in ctx.store.changes(ctx.session.id):
            d = c.revert_data or {}
            if c.kind == self.kind and not c.reverted and (d.get("id") == info["id"] or
                                                           (not d.get("id") and d.get("name") == info["name"])):
                return True
        return False

    def applied(self, ctx: Any, action: Action) -> bool | None:
        info = self.existing(ctx, action)
        if info is None or info.get("status") == "ERROR":
            return False
        return True if self.recorded(ctx, info) else None

    def run(self, ctx: Any, action: Action) -> Applied:
        d = action.data
        c = _conn(ctx)
        info = self.existing(ctx, action)
        self.forget(ctx, action)
        if info is not None and info.get("status") == "ERROR":
            ctx.warn(f"server {info['name']} is in ERROR ({info.get('fault') or 'no fault given'}): deleting it to "
                     "create it again", node=action.target)
            p.delete(c, "server", info["id"])
            p.wait_gone(c, "server", info["id"])
            for ch in ctx.store.changes(ctx.session.id):
                rd = ch.revert_data or {}
                if ch.kind == self.kind and not ch.reverted and (rd.get("id") == info["id"] or
                                                                 (not rd.get("id") and rd.get("name") == info["name"])):
                    ctx.store.mark_reverted(ch.id)
            info = None
        revert = {"id": None, "name": d["name"], "lab": d["lab"], "tag": d["tag"]}
        delete = f"openstack server delete {shlex.quote(d['name'])}"
        if info is not None:
            if self.recorded(ctx, info):
                return Applied(False, note="exists, created by this lab", result=info)
            return Applied(True, dict(revert, id=info["id"]), result=info, target=d["name"], revert_command=delete,
                           note="found from an interrupted run: recorded now, not created again")
        for ch in ctx.store.changes(ctx.session.id):  # a record of a POST a killed run never made
            rd = ch.revert_data or {}
            if ch.kind == self.kind and not ch.reverted and not rd.get("id") and rd.get("name") == d["name"]:
                ctx.store.mark_reverted(ch.id)
        body = self.body(ctx, action)
        pool = getattr(ctx.memo, "provision_pool", None)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = ctx.memo.provision_pool = ThreadPoolExecutor(8, thread_name_prefix="labtui-server")
            ctx.memo.provision_posts = {}
        ctx.memo.provision_posts[d["name"]] = pool.submit(p.create, c, "server", body, api=action.api or "",
                                                         command=action.command)
        return Applied(True, revert, target=d["name"], revert_command=delete,
                       note="asked for; labtui waits for all the servers together")

    def body(self, ctx: Any, action: Action) -> dict[str, Any]:
        d = action.data
        attrs = dict(d["attrs"])
        port_id = resolve(ctx, "port", d["port_name"], d["lab"], d["tag"])
        attrs["networks"] = [{"port": port_id}]
        attrs["tags"] = [d["tag"]]
        attrs["description"] = DESCRIPTION.format(lab=d["lab"])
        return attrs

    def revert(self, ctx: Any, change: Any) -> str:
        data = change.revert_data or {}
        c = _conn(ctx)
        if data.get("id"):
            targets = [x for x in [p.get(c, "server", data["id"])] if x is not None]
        else:
            targets = p.find(c, "server", name=data.get("name"))
        targets = [x for x in targets if ours(x, data.get("tag", ""), data.get("lab", ""))]
        if not targets:
            return "already gone"
        for x in targets:
            p.delete(c, "server", x["id"], command=change.revert_command)
        for x in targets:
            p.wait_gone(c, "server", x["id"])  # the group and the network can go only after the server
        return f"deleted server {data.get('name') or data.get('id')}"


def join_server_posts(ctx: Any) -> dict[str, str]:
    """Wait for the server POSTs asked for in this run: {server name: why it failed}."""
    posts = getattr(ctx.memo, "provision_posts", None) or {}
    failed: dict[str, str] = {}
    for name, fut in list(posts.items()):
        try:
            fut.result()
        except LabError as exc:
            failed[name] = exc.render()
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    posts.clear()
    pool = getattr(ctx.memo, "provision_pool", None)
    if pool is not None:
        pool.shutdown(wait=True)
        ctx.memo.provision_pool = None
    return failed


@register
class Keypair(CloudResource):
    """An imported public key (never a private key). Ours when the key in the cloud is the user's."""

    kind = "cloud.keypair"
    res = "keypair"
    taggable = False

    def lookup(self, ctx: Any, action: Action) -> dict[str, Any] | None:
        d = action.data
        c = _conn(ctx)
        for o in p.find(c, "keypair", name=d["name"]):
            if (o.get("public_key") or "").split()[:2] != d["attrs"]["public_key"].split()[:2]:
                raise LabError(f"cloud {c.name}: a keypair named {d['name']} already exists with another public key",
                               f"labtui never replaces it: delete it (`openstack keypair delete {d['name']}`) if it is "
                               "an old one of this lab, or name an existing keypair in the plan (provision.keypair)",
                               code="name-clash")
            return o
        return None

    def body(self, ctx: Any, action: Action) -> dict[str, Any]:
        return dict(action.data["attrs"])

    def run(self, ctx: Any, action: Action) -> Applied:
        applied = super().run(ctx, action)
        if applied.changed:
            applied.revert_data["public_key"] = action.data["attrs"]["public_key"]
        return applied

    def revert(self, ctx: Any, change: Any) -> str:
        data = change.revert_data or {}
        c = _conn(ctx)
        found = p.find(c, "keypair", name=data.get("name") or data.get("id"))
        if not found:
            return "already gone"
        if (found[0].get("public_key") or "").split()[:2] != (data.get("public_key") or "").split()[:2]:
            raise LabError(f"cloud {c.name}: keypair {data.get('name')} now holds another public key",
                           "labtui deletes only the key it imported; delete it by hand if it is yours", code="not-ours")
        p.delete(c, "keypair", data.get("name") or data["id"], command=change.revert_command)
        return f"deleted keypair {data.get('name')}"


# A rule of the lab's own new group (Action.data: rule = a provision_plan.RuleSpec, group, lab, tag) is
# created by the one rule kind, labtui.changes.openstack.SecurityGroupRule (recorded as cloud.sg-rule);
# these find its group and say whether the group has it.


def lab_rule(ctx: Any, action: Action) -> RuleFix:
    """The rule to create, in the network model's one shape (the group's id looked up now)."""
    d = action.data
    gid = resolve(ctx, "security-group", d["group"], d["lab"], d["tag"])
    return lab_rule_fix(RuleSpec(**d["rule"]), gid, d["group"])


def lab_rule_id(ctx: Any, action: Action) -> str | None:
    """The id of the group's rule Neutron counts as this one, or None. One read of a group's rules
    serves the checks of all its rules made together (dropped when a rule is made)."""
    c = _conn(ctx)
    want = lab_rule(ctx, action)
    gid = want.security_group_id
    with _READ_LOCK:  # the rules' checks run together: the first reads, the others use its answer
        cache = getattr(ctx.memo, "provision_rules", None)
        if cache is None:
            cache = ctx.memo.provision_rules = {}
        hit = cache.get(gid)
        if hit is not None and time.monotonic() - hit[0] < SEEN_SECONDS:
            rules = hit[1]
        else:
            rules = group_rules(c, gid, "read the group's rules")
            cache[gid] = (time.monotonic(), rules)
    found = find_same_rule(rules, want)
    return found.id if found else None


def lab_rule_applied(ctx: Any, action: Action) -> bool:
    return bool(unless_parent_missing(lambda: lab_rule_id(ctx, action)))  # False: its group is not there yet


def forget_rules(ctx: Any, group_id: str) -> None:
    """A rule is being made in this group: its cached rules are stale."""
    (getattr(ctx.memo, "provision_rules", None) or {}).pop(group_id, None)


@register
class RouterInterface(ChangeKind):
    kind = "cloud.router-interface"
    layer = "cloud"

    def _ids(self, ctx: Any, action: Action) -> tuple[str, str]:
        d = action.data
        return (resolve(ctx, "router", d["router"], d["lab"], d["tag"]),
                resolve(ctx, "subnet", d["subnet"], d["lab"], d["tag"]))

    def applied(self, ctx: Any, action: Action) -> bool | None:
        ids = unless_parent_missing(lambda: self._ids(ctx, action))  # the router or the subnet
        return ids is not False and bool(p.router_has_interface(_conn(ctx), *ids))

    def run(self, ctx: Any, action: Action) -> Applied:
        router, subnet = self._ids(ctx, action)
        c = _conn(ctx)
        if p.router_has_interface(c, router, subnet):
            return Applied(False, note="the router has this subnet already")
        p.add_router_interface(c, router, subnet)
        return Applied(True, {"router": router, "subnet": subnet}, target=action.data["router"],
                       revert_command=f"openstack router remove subnet {router} {subnet}")

    def verify(self, ctx: Any, action: Action, applied: Applied) -> str | None:
        return None

    def revert(self, ctx: Any, change: Any) -> str:
        d = change.revert_data or {}
        if not p.remove_router_interface(_conn(ctx), d["router"], d["subnet"]):
            return "already gone"
        return "removed the subnet from the router"


# ----------------------------------------------------------------------------- building actions


def resource_action(res: str, *, lab: str, tag: str, name: str, title: str, command: str, attrs: dict[str, Any],
                    refs: dict[str, list[str]] | None = None, target: str | None = None,
                    list_refs: tuple[str, ...] = (), **extra: Any) -> Action:
    """An Action that creates one of this lab's resources (kind `cloud.<res>`). `refs` name other
    resources of the lab whose ids the body needs; those in `list_refs` are lists of one id."""
    body = dict(attrs)
    for attr, (kind, rname) in (refs or {}).items():
        ref = f"<id of {TITLES[kind]} {rname}>"
        body[attr] = [ref] if attr in list_refs else ref
    if list_refs:
        extra["list_refs"] = list(list_refs)
    api = f"POST {p.KINDS[res][2]} " + json.dumps({res.replace('-', '_'): _api_body(body)}, sort_keys=True, default=str)
    if res in ("network", "subnet", "router", "security-group", "port", "floating-ip"):
        api += f", then PUT {p.KINDS[res][2]}/<id>/tags {{\"tags\": [\"{tag}\"]}}"
    kind_name = f"cloud.{res}"
    return Action(id=f"{res}:{name}", title=title, command=command, kind="openstack", target=target or name,
                  risk=Risk.CHANGE, change=kind_name, api=api,
                  revert=f"openstack {TITLES[res]} delete {shlex.quote(name)}",
                  data={"lab": lab, "tag": tag, "name": name, "attrs": attrs, "refs": refs or {}, **extra})


def _api_body(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "security_group_ids" in out:  # the SDK's name; Neutron's body says security_groups
        out["security_groups"] = out.pop("security_group_ids")
    if "user_data" in out:
        out["user_data"] = f"<cloud-config, {len(out['user_data'])} bytes, base64>"
    if "public_key" in out:
        out["public_key"] = out["public_key"].split()[0] + " ..."
    return out

