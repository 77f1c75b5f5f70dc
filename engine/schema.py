"""The process definition format (v1) as data: the one source of truth.

The structural checker (`engine.loader`), the typed model (`engine.definition`), the JSON Schema
served by the API and the designer's property panels all read these tables, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "STEP_TYPES",
    "TOP_LEVEL",
    "TRIGGER_TYPES",
    "Field",
    "Kind",
    "Spec",
    "step_spec",
    "trigger_spec",
]

FORMAT_VERSION = 1


class Kind(StrEnum):
    """What a field holds; decides the check, the JSON Schema and the designer widget."""

    SLUG = "slug"
    STRING = "string"
    TEXT = "text"  # free text, markdown
    TEMPLATE = "template"  # text with {{ }} placeholders
    CONDITION = "condition"  # boolean expression, bare or with placeholders
    DURATION = "duration"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ENUM = "enum"
    VERSION = "version"
    STEP_ID = "step_id"  # the id of a step in this process
    STEP_IDS = "step_ids"  # one step id or a list of them
    STRINGS = "strings"  # a list of strings (a lone string is accepted)
    TEMPLATES = "templates"  # a list of templates (a lone string is accepted)
    MONEY = "money"
    CRON = "cron"
    TIMEZONE = "timezone"
    WHEN = "when"  # ISO datetime or template
    ANY = "any"
    MAPPING = "mapping"  # free-form object
    TEMPLATE_MAP = "template_map"  # {key: template}
    JSON_SCHEMA = "json_schema"
    OBJECT = "object"  # nested spec
    OBJECTS = "objects"  # list of nested spec
    OBJECT_MAP = "object_map"  # {name: nested spec}
    ON_ERROR = "on_error"  # action string or {action, target_step, max_visits}
    ASSIGNEES = "assignees"  # usernames, emails, team:<slug>, {team, role}
    OUTPUTS = "outputs"  # list of {name, source, description} or bare source strings
    STEPS = "steps"  # list of steps, discriminated by type
    TRIGGERS = "triggers"  # list of triggers, discriminated by type


@dataclass(frozen=True)
class Field:
    """One key of a mapping in the format."""

    name: str
    kind: Kind
    doc: str
    required: bool = False
    default: Any = None
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    spec: Spec | None = None
    minimum: float | None = None
    maximum: float | None = None
    new: bool = False  # not in the original Trinity dialect


@dataclass(frozen=True)
class Spec:
    """A mapping: its fields and what to do with keys it does not know."""

    name: str
    doc: str
    fields: tuple[Field, ...]
    metadata_keys: tuple[str, ...] = ()  # unknown keys kept as metadata instead of an error
    by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, Field] = {}
        for f in self.fields:
            index[f.name] = f
            for alias in f.aliases:
                index[alias] = f
        object.__setattr__(self, "by_name", index)

    def names(self) -> list[str]:
        """Every accepted key: canonical names and aliases."""
        return list(self.by_name)


STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]*$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
STEP_ID_MAX = 64

STEP_TYPE_NAMES = (
    "agent_task",
    "human_approval",
    "gateway",
    "timer",
    "notification",
    "sub_process",
)
ERROR_ACTIONS = ("fail_process", "skip_step", "goto_step")
NEVER_RETRIED = (
    "APPROVAL_REJECTED",
    "APPROVAL_TIMEOUT",
    "VALIDATION_ERROR",
    "INVALID_CONFIG",
    "BUDGET_EXCEEDED",
)
CLASSIFICATIONS = ("public", "internal", "confidential", "pii")
INPUT_TYPES = ("string", "number", "integer", "boolean", "object", "array")
CHANNELS = ("slack", "email", "webhook")
TIMEOUT_ACTIONS = ("notify", "reject", "auto_approve", "escalate", "skip")
CRON_PRESETS = ("hourly", "daily", "weekly", "monthly", "weekdays")

# --- nested blocks -------------------------------------------------------------------------

RETRY = Spec(
    "retry",
    "How often and how fast a failed step is tried again.",
    (
        Field("max_attempts", Kind.INTEGER, "Attempts in all, the first included.", minimum=1,
              maximum=100),
        Field("initial_delay", Kind.DURATION, "Wait before the first retry.", default="5s",
              aliases=("delay",)),
        Field("backoff", Kind.ENUM, "How the wait grows between retries.",
              default="exponential", choices=("fixed", "linear", "exponential")),
        Field("backoff_multiplier", Kind.NUMBER, "Growth factor for exponential backoff.",
              default=2.0, minimum=1.0),
        Field("max_delay", Kind.DURATION, "Longest wait between two attempts.", default="5m"),
        Field("jitter", Kind.BOOLEAN, "Randomise each wait between 50% and 100%.",
              default=False, new=True),
        Field("retryable_errors", Kind.STRINGS,
              "Only these error codes are retried (empty: every code not excluded)."),
        Field("non_retryable_errors", Kind.STRINGS, "Error codes that are never retried."),
    ),
)

ON_ERROR = Spec(
    "on_error",
    "What happens after the last attempt of a step failed.",
    (
        Field("action", Kind.ENUM, "fail_process, skip_step or goto_step.",
              default="fail_process", choices=ERROR_ACTIONS),
        Field("target_step", Kind.STEP_ID, "The step goto_step jumps back to."),
        Field("max_visits", Kind.INTEGER, "How often goto_step may re-enter the target.",
              default=3, minimum=1, new=True),
    ),
)

ROLES = Spec(
    "roles",
    "Who does the step, who watches it and who is told about it.",
    (
        Field("executor", Kind.STRING, "The agent or person that performs the step."),
        Field("monitors", Kind.STRINGS, "Receive failures and budget warnings."),
        Field("informed", Kind.STRINGS, "Receive the step's completed and failed events."),
    ),
)

DATA_HANDLING = Spec(
    "data_handling",
    "Classification of the data the step reads and writes.",
    (
        Field("input_classification", Kind.ENUM, "Classification of the step's input.",
              choices=CLASSIFICATIONS),
        Field("output_classification", Kind.ENUM, "Classification of the step's output.",
              choices=CLASSIFICATIONS),
        Field("encryption_required", Kind.BOOLEAN, "Store the step's output encrypted.",
              default=False),
    ),
)

ROUTE = Spec(
    "route",
    "A gateway route: where control goes when the condition holds.",
    (
        Field("condition", Kind.CONDITION, "When this route is taken (none: always)."),
        Field("target", Kind.STEP_ID, "The step this route leads to.", required=True),
    ),
)

CHANGES_REQUESTED = Spec(
    "on_changes_requested",
    "Where an approval that asks for changes loops back to.",
    (
        Field("goto", Kind.STEP_ID, "The earlier step to run again.", required=True),
        Field("max_visits", Kind.INTEGER, "How often the loop may run.", default=3, minimum=1),
    ),
    metadata_keys=(),
)

INPUT_FIELD = Spec(
    "input field",
    "One typed input of the process.",
    (
        Field("type", Kind.ENUM, "The value's type.", default="string", choices=INPUT_TYPES),
        Field("description", Kind.TEXT, "Shown on the start form."),
        Field("default", Kind.ANY, "Used when the caller gives no value."),
        Field("required", Kind.BOOLEAN, "The caller must give a value.", default=False),
        Field("enum", Kind.ANY, "The allowed values (a list)."),
    ),
)

BUDGET = Spec(
    "budget",
    "Cost limit of one execution.",
    (
        Field("max_cost", Kind.MONEY, "The execution fails with BUDGET_EXCEEDED above this."),
        Field("warn_at", Kind.NUMBER, "Fraction of max_cost that raises a warning.",
              default=0.8, minimum=0.0, maximum=1.0),
    ),
)

CONFIG = Spec(
    "config",
    "Limits and defaults of the process.",
    (
        Field("max_concurrent_instances", Kind.INTEGER, "Per-process cap on running executions.",
              minimum=1),
        Field("priority", Kind.ENUM, "Scheduling priority.", default="normal",
              choices=("high", "normal", "low")),
        Field("budget", Kind.OBJECT, "Cost limit of one execution.", spec=BUDGET),
        Field("timeout", Kind.DURATION, "Deadline of the whole execution."),
        Field("default_retry", Kind.OBJECT, "Retry block of every step without one.",
              spec=RETRY),
    ),
)

OUTPUT = Spec(
    "output",
    "A named result of the execution.",
    (
        Field("name", Kind.STRING, "The output's name.", required=True),
        Field("source", Kind.TEMPLATE, "Any template; a single placeholder keeps its value.",
              required=True, aliases=("value",)),
        Field("description", Kind.TEXT, "What the output means."),
    ),
)

COMPENSATION = Spec(
    "compensation",
    "The undo action run when the execution fails after this step completed.",
    (
        Field("type", Kind.ENUM, "agent_task or notification.", required=True,
              choices=("agent_task", "notification")),
        Field("agent", Kind.TEMPLATE, "The agent (agent_task)."),
        Field("message", Kind.TEMPLATE, "The message to send.", aliases=("template",)),
        Field("channel", Kind.ENUM, "The channel (notification).", choices=CHANNELS),
        Field("channels", Kind.STRINGS, "Several channels (notification)."),
        Field("webhook_url", Kind.TEMPLATE, "Webhook or Slack URL.", aliases=("url",)),
        Field("recipients", Kind.STRINGS, "Email recipients."),
        Field("subject", Kind.TEMPLATE, "Email subject."),
        Field("timeout", Kind.DURATION, "How long the compensation may take.", default="5m"),
    ),
)

# --- steps ---------------------------------------------------------------------------------

STEP_COMMON = (
    Field("id", Kind.STRING, "Unique id: lowercase letters, digits, - and _.", required=True),
    Field("name", Kind.STRING, "Display name (default: the id)."),
    Field("type", Kind.ENUM, "The kind of step.", required=True, choices=STEP_TYPE_NAMES),
    Field("description", Kind.TEMPLATE, "What the step does.", new=True),
    Field("depends_on", Kind.STEP_IDS, "Steps that must finish before this one."),
    Field("condition", Kind.CONDITION, "False: the step is skipped (condition_not_met)."),
    Field("timeout", Kind.DURATION, "How long the step may take."),
    Field("retry", Kind.OBJECT, "Retries after a failure.", spec=RETRY),
    Field("on_error", Kind.ON_ERROR, "What happens after the last failed attempt.",
          spec=ON_ERROR),
    Field("compensation", Kind.OBJECT, "Undo action when the execution fails.",
          spec=COMPENSATION),
    Field("roles", Kind.OBJECT, "Executor, monitors and informed parties.", spec=ROLES),
    Field("data_handling", Kind.OBJECT, "Data classification of the step.",
          spec=DATA_HANDLING, new=True),
)

AGENT_TASK = (
    Field("agent", Kind.TEMPLATE, "The registered agent that does the work.", required=True),
    Field("message", Kind.TEMPLATE, "What the agent is asked.", required=True),
    Field("model", Kind.STRING, "Model name for agents that accept one."),
    Field("temperature", Kind.NUMBER, "Sampling temperature for agents that accept one.",
          minimum=0.0, maximum=2.0),
    Field("max_cost", Kind.MONEY, "Most this step may cost.", new=True),
    Field("output_schema", Kind.JSON_SCHEMA,
          "JSON Schema the reply must match (else a retryable OUTPUT_INVALID).", new=True),
    Field("output_key", Kind.STRING, "Name under which the output is also known (metadata)."),
)

HUMAN_APPROVAL = (
    Field("title", Kind.TEMPLATE, "Headline shown to the approver."),
    Field("assignees", Kind.ASSIGNEES,
          "Usernames, emails, team:<slug> or {team, role}; empty: anyone allowed to approve."),
    Field("required_approvals", Kind.INTEGER, "Approvals needed (N of M).", default=1,
          minimum=1, new=True),
    Field("on_timeout", Kind.ENUM, "What happens when nobody decides in time.",
          default="reject", choices=TIMEOUT_ACTIONS, aliases=("timeout_action",)),
    Field("escalate_to", Kind.ASSIGNEES, "Who gets the request when it escalates.", new=True),
    Field("reminder_every", Kind.DURATION, "Remind the assignees this often.", new=True),
    Field("artifacts", Kind.TEMPLATES, "Templates shown to the approver."),
    Field("allow_comments", Kind.BOOLEAN, "The approver may leave a comment.", default=True),
    Field("require_reason_on_reject", Kind.BOOLEAN, "A rejection needs a reason.",
          default=False),
    Field("allow_edit", Kind.BOOLEAN, "The approver may edit the artifact.", default=False,
          new=True),
    Field("on_changes_requested", Kind.OBJECT, "Loop back when changes are requested.",
          spec=CHANGES_REQUESTED, new=True),
    Field("forbid_self_approval", Kind.BOOLEAN,
          "Whoever started the execution may not approve it.", default=False, new=True),
)

GATEWAY = (
    Field("gateway_type", Kind.ENUM, "exclusive: first match; parallel: all; inclusive: every "
          "match.", default="exclusive", choices=("exclusive", "parallel", "inclusive")),
    Field("routes", Kind.OBJECTS, "The routes, in order.", spec=ROUTE),
    Field("default_route", Kind.STEP_ID, "Taken when no route condition holds."),
)

TIMER = (
    Field("delay", Kind.DURATION, "How long to wait.", aliases=("duration", "wait_duration")),
    Field("until", Kind.WHEN, "Wait until this time (ISO datetime or template)."),
    Field("timezone", Kind.TIMEZONE, "Timezone of until when it has none.", default="UTC"),
)

NOTIFICATION = (
    Field("channel", Kind.ENUM, "Where the message goes.", choices=CHANNELS),
    Field("channels", Kind.STRINGS, "Several channels at once."),
    Field("message", Kind.TEMPLATE, "The message.", aliases=("template",)),
    Field("webhook_url", Kind.TEMPLATE, "Webhook or Slack URL; ${ENV} is read from the "
          "environment.", aliases=("url",)),
    Field("recipients", Kind.STRINGS, "Email recipients."),
    Field("subject", Kind.TEMPLATE, "Email subject."),
)

SUB_PROCESS = (
    Field("process_name", Kind.STRING, "The process to start.", required=True,
          aliases=("process",)),
    Field("version", Kind.VERSION, "The child's version (default: latest published)."),
    Field("input_mapping", Kind.TEMPLATE_MAP, "The child's input: key → template."),
    Field("output_key", Kind.STRING, "Name under which the output is also known (metadata)."),
    Field("wait_for_completion", Kind.BOOLEAN, "false: start the child and go on.",
          default=True),
)

_STEP_FIELDS = {
    "agent_task": AGENT_TASK,
    "human_approval": HUMAN_APPROVAL,
    "gateway": GATEWAY,
    "timer": TIMER,
    "notification": NOTIFICATION,
    "sub_process": SUB_PROCESS,
}

STEP_DOCS = {
    "agent_task": "An agent does a piece of work.",
    "human_approval": "A person approves, rejects or asks for changes.",
    "gateway": "Control goes down one, some or all routes.",
    "timer": "Wait for a while or until a time, durably.",
    "notification": "Send a message by Slack, email or webhook.",
    "sub_process": "Run another process as a step.",
}

STEP_TYPES: Mapping[str, Spec] = {
    name: Spec(f"{name} step", STEP_DOCS[name], STEP_COMMON + fields,
               metadata_keys=("output_key",))
    for name, fields in _STEP_FIELDS.items()
}

DEFAULT_TIMEOUTS = {"agent_task": "5m", "human_approval": "24h", "sub_process": "1h"}
DEFAULT_MAX_ATTEMPTS = {"agent_task": 3, "notification": 3}

# --- triggers ------------------------------------------------------------------------------

_TRIGGER_COMMON = (
    Field("id", Kind.STRING, "Unique id of the trigger."),
    Field("type", Kind.ENUM, "manual, webhook or schedule (none: webhook).", default="webhook",
          choices=("manual", "webhook", "schedule")),
    Field("enabled", Kind.BOOLEAN, "A disabled trigger never fires.", default=True),
    Field("description", Kind.TEXT, "What the trigger is for."),
)

TRIGGER_TYPES: Mapping[str, Spec] = {
    "manual": Spec("manual trigger", "Started by a person.", _TRIGGER_COMMON),
    "webhook": Spec(
        "webhook trigger",
        "Started by an HTTP POST; the JSON body becomes the input.",
        (*_TRIGGER_COMMON,
         Field("secret", Kind.STRING, "Checked against the X-Webhook-Secret header.")),
    ),
    "schedule": Spec(
        "schedule trigger",
        "Started on a cron schedule.",
        (*_TRIGGER_COMMON,
         Field("cron", Kind.CRON, "5 fields or hourly, daily, weekly, monthly, weekdays.",
               required=True),
         Field("timezone", Kind.TIMEZONE, "Timezone of the schedule.", default="UTC"),
         Field("input", Kind.MAPPING, "Input of each scheduled execution.", new=True)),
    ),
}

# --- top level -----------------------------------------------------------------------------

TOP_LEVEL = Spec(
    "process",
    "A process definition.",
    (
        Field("name", Kind.SLUG, "Slug: lowercase letters, digits, '.', '_' and '-'.",
              required=True),
        Field("version", Kind.VERSION, "1, \"1\" or \"1.2\".", default="1"),
        Field("description", Kind.TEXT, "What the process is for (markdown)."),
        Field("owner", Kind.STRING, "Owning team (default: the creator's team).", new=True),
        Field("data_classification", Kind.ENUM, "How sensitive the data is.",
              default="internal", choices=CLASSIFICATIONS, new=True),
        Field("tags", Kind.STRINGS, "Labels for search.", new=True),
        Field("allowed_users", Kind.STRINGS,
              "Only these users (usernames or emails) may start it; empty: everyone "
              "allowed by their role.", new=True),
        Field("input", Kind.OBJECT_MAP, "Typed inputs of the start form.", spec=INPUT_FIELD,
              new=True),
        Field("config", Kind.OBJECT, "Limits and defaults.", spec=CONFIG, new=True),
        Field("triggers", Kind.TRIGGERS, "How the process is started."),
        Field("steps", Kind.STEPS, "The steps.", required=True),
        Field("outputs", Kind.OUTPUTS, "Named results of the execution.", spec=OUTPUT),
    ),
)


def step_spec(step_type: str) -> Spec | None:
    """The spec of a step type, or None when the type is unknown."""
    return STEP_TYPES.get(step_type)


def trigger_spec(trigger_type: str) -> Spec | None:
    """The spec of a trigger type, or None when the type is unknown."""
    return TRIGGER_TYPES.get(trigger_type)
