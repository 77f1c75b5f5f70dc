"""`/agents`: the agent registry — what each agent is, how much it may do at once, how busy
it is now, and a test call."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from app.agents.capacity import BLOCK_PREFIX
from app.security import Permission
from app.services import ServiceError
from app.views import agent_view
from pages.shell import container, frame, page_actor, to_login

__all__ = ["register"]

KINDS = ("demo", "http", "openai", "command")
KIND_HELP = {
    "demo": "Built in: answers with configured latency, cost and replies; no network.",
    "http": "POSTs the step's message as JSON to a URL and reads a JSON reply.",
    "openai": "An OpenAI-compatible chat completions endpoint (base URL + model).",
    "command": "Runs a program with the message on stdin and reads its stdout.",
}


async def load_usage(c: Any, names: list[str]) -> dict[str, tuple[int, int, int]]:
    """(running, reserved, waiting) per agent, from the shared capacity store in Redis:
    calls holding a slot of their own, slots held by workers' blocks (calls run under them
    without a Redis round trip, so how many of them are busy is known only to the worker),
    and calls waiting in line."""
    slots = getattr(c.agents, "slots", None)
    if slots is None or not hasattr(slots, "keys"):
        return {}
    out: dict[str, tuple[int, int, int]] = {}
    try:
        async with c.redis.pipeline(transaction=False) as pipe:
            for name in names:
                holders, queue = slots.keys(name)[:2]
                pipe.zrange(holders, 0, -1)
                pipe.zcard(queue)
            replies = await pipe.execute()
    except Exception:  # Redis down: the page still lists the registry
        return {}
    for i, name in enumerate(names):
        members, waiting = replies[2 * i], int(replies[2 * i + 1])
        reserved = sum(1 for m in members
                       if (m.encode() if isinstance(m, str) else m).startswith(BLOCK_PREFIX))
        out[name] = (len(members) - reserved, reserved, waiting)
    return out


def _in_use(running: int | None, reserved: int | None) -> str:
    if running is None or reserved is None:
        return "—"
    if not reserved:
        return str(running)
    return f"{running} + up to {reserved} in worker blocks"


def register() -> None:
    from nicegui import ui

    @ui.page("/agents")
    async def agents_page(request: Request) -> Any:
        actor = await page_actor(request)
        if actor is None:
            return to_login(request)
        with frame(actor, "Agents", active="/agents"):
            await AgentsView(actor, container()).render()
        return None


class AgentsView:
    def __init__(self, actor: Any, c: Any) -> None:
        self.actor = actor
        self.c = c
        self.table: Any = None

    async def render(self) -> None:
        from nicegui import ui

        actor = self.actor
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Agents").classes("text-2xl font-semibold")
            if any(Permission.AGENT_MANAGE in actor.p.permissions_in(t)
                   for t, _ in actor.p.grants):
                ui.button("Add agent", icon="add", on_click=lambda: self.editor(None)).props(
                    'data-testid="agent-add"')
        self.table = ui.refreshable(self._table)
        await self.table()

    async def _table(self) -> None:
        from nicegui import ui

        actor = self.actor
        rows = await actor.agents()
        if not rows:
            with ui.card().classes("p-6 items-center"):
                ui.icon("smart_toy").classes("text-5xl text-slate-400")
                ui.label("No agents registered yet.").classes("text-lg")
                ui.label("Add one above; `demo` agents need no network and are "
                         "seeded by `trinity up`.").classes("text-slate-500")
            return
        usage = await load_usage(self.c, [r.name for r in rows])
        data = []
        for r in rows:
            running, reserved, waiting = usage.get(r.name, (None, None, None))
            data.append({"name": r.name, "kind": r.kind, "capacity": r.capacity,
                         "busy": _in_use(running, reserved),
                         "waiting": "—" if waiting is None else waiting,
                         "timeout": f"{r.timeout_seconds:g} s" if r.timeout_seconds
                         else "default",
                         "owner": r.owner_team or "organisation",
                         "description": r.description or "",
                         "manage": actor.can(Permission.AGENT_MANAGE, r.owner_team)})
        t = ui.table(columns=COLUMNS, rows=data, row_key="name").classes("w-full")
        t.props('flat bordered data-testid="agents-table"')
        t.add_slot("body-cell-actions", ACTIONS_SLOT)
        by_name = {r.name: r for r in rows}
        t.on("test", lambda e: self.run_test(str(e.args)))
        t.on("edit", lambda e: self.editor(by_name.get(str(e.args))))

    async def run_test(self, name: str) -> None:
        from nicegui import ui

        from app.agents.gateway import test_agent

        agent = await self.c.lookup_agent(name)
        if agent is None:
            ui.notify(f"'{name}' is disabled or gone", type="warning")
            return
        ui.notify(f"Testing {name} …")
        ok, message = await test_agent(agent, self.c.agents)
        ui.notify(f"{name}: {message}", type="positive" if ok else "negative",
                  multi_line=True)

    def editor(self, row: Any) -> None:
        from nicegui import ui

        view = agent_view(row) if row is not None else {}
        config = dict(row.config or {}) if row is not None else {}
        with ui.dialog() as dialog, ui.card().classes("w-[32rem] gap-2"):
            ui.label("Edit agent" if row else "Add agent").classes("text-lg")
            f = {
                "name": ui.input("Name", value=view.get("name", "")).props(
                    'data-testid="agent-name"' + (" readonly" if row else "")),
                "kind": ui.select(list(KINDS), label="Kind",
                                  value=view.get("kind", "http")).props(
                    'data-testid="agent-kind"'),
            }
            ui.label("").classes("text-xs text-slate-500").bind_text_from(
                f["kind"], "value", lambda k: KIND_HELP.get(k, ""))
            for key, label in CONFIG_FIELDS:
                f[key] = ui.input(label, value=config.get(key, "")).props(
                    f'data-testid="agent-{key}"')
            f["capacity"] = ui.number("Capacity (tasks at a time)",
                                      value=view.get("capacity", 1), min=1, precision=0)
            f["timeout"] = ui.number("Timeout (seconds; empty: default)",
                                     value=view.get("timeout_seconds"), min=1)
            f["owner"] = ui.input("Owner team (empty: organisation)",
                                  value=(row.owner_team if row else self.actor.p.home_team)
                                  or "").props("" if row is None else "readonly")
            f["description"] = ui.input("Description", value=view.get("description") or "")
            error = ui.label("").classes("text-red-700 text-sm").props("role=alert")

            async def save() -> None:
                problem = await self.save(f, config)
                if problem:
                    error.text = problem
                    return
                dialog.close()
                ui.notify(f"Agent {f['name'].value} saved", type="positive")
                self.table.refresh()

            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Save", on_click=save).props('data-testid="agent-save"')
        dialog.open()

    async def save(self, f: dict[str, Any], config: dict[str, Any]) -> str | None:
        """Save the form; the problem in words, or None."""
        name = (f["name"].value or "").strip()
        if not name:
            return "An agent needs a name."
        cfg = {k: v for k, v in config.items() if k not in dict(CONFIG_FIELDS)}
        for key, _ in CONFIG_FIELDS:
            if (f[key].value or "").strip():
                cfg[key] = f[key].value.strip()
        try:
            await self.actor.save_agent(
                name, f["kind"].value, cfg, int(f["capacity"].value or 1),
                float(f["timeout"].value) if f["timeout"].value else None,
                f["description"].value or None, (f["owner"].value or "").strip() or None)
        except (ServiceError, PermissionError, ValueError) as e:
            return str(e)
        return None


CONFIG_FIELDS = [("url", "URL (http / openai base URL)"), ("model", "Model (openai)"),
                 ("command", "Command (command kind)"),
                 ("api_key_env", "API key environment variable (openai)")]
COLUMNS = [
    {"name": "name", "label": "Name", "field": "name", "align": "left", "sortable": True},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left", "sortable": True},
    {"name": "capacity", "label": "Capacity", "field": "capacity"},
    {"name": "busy", "label": "In use", "field": "busy"},
    {"name": "waiting", "label": "Waiting", "field": "waiting"},
    {"name": "timeout", "label": "Timeout", "field": "timeout"},
    {"name": "owner", "label": "Owner team", "field": "owner", "align": "left"},
    {"name": "description", "label": "Description", "field": "description", "align": "left"},
    {"name": "actions", "label": "", "field": "name"},
]
ACTIONS_SLOT = r"""
    <q-td :props="props" class="text-right">
      <q-btn flat dense icon="bolt" label="Test" :data-testid="'agent-test-' + props.row.name"
             @click="$parent.$emit('test', props.row.name)" />
      <q-btn v-if="props.row.manage" flat dense icon="edit"
             :aria-label="'Edit ' + props.row.name"
             :data-testid="'agent-edit-' + props.row.name"
             @click="$parent.$emit('edit', props.row.name)" />
    </q-td>"""
