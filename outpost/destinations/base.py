"""The one interface every destination type implements, and what they share.

A type says what it accepts (`schema`, checked by `validate`), turns an event into its
record (`format`, pure: the same event and destination give the same bytes on every
attempt), sends (`send` one record alone, `send_batch` records handed to the type's
batcher) and says what a failure means (`classify`: retry, dead-letter, or retry and
count toward the consecutive-failure alerts). Masking credentials in API responses and
sealing them at rest are the registry's job, done the same way for every type.

A new type subclasses `DestinationType` and writes `schema`, `target`, `format`, `send`
and `classify`; the rest has defaults that fit a type without batching or ordering keys.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import structlog
from pydantic import AfterValidator, BaseModel, ValidationError

from outpost.errors import DeliveryError, ValidationFailed
from outpost.models import Destination, Event, OrderedBy

log = structlog.get_logger("outpost.destinations")
Result = dict[str, Any]  # what a successful send answered, kept on the attempt


class Kind(enum.Enum):
    """What happens after a failed attempt."""

    RETRY = "retry"  # on the retry schedule (throttling, 5xx, timeouts, connections)
    PERMANENT = "permanent"  # dead-lettered at once: the same request fails the same way
    AUTH = "auth"  # retried; the destination's credentials or permissions are wrong, the
    # failure the consecutive-failure alerts and auto-disable exist for


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure: its kind, a stable code kept on the attempt, and detail."""

    kind: Kind
    code: str
    message: str
    response: dict[str, Any] = field(default_factory=dict)
    # no answer came from the endpoint (a timeout, a refused or dropped connection): what
    # the worker's circuit breakers count. Any answer, even a 4xx, says it is alive.
    unanswered: bool = False
    # the destination itself is wrong (its stream is gone, its role refuses us): failed at
    # once, and the operator alerted at once (the destination disabled per the setting)
    broken: bool = False

    @property
    def retryable(self) -> bool:
        return self.kind is not Kind.PERMANENT

    @classmethod
    def of(cls, exc: DeliveryError) -> Failure:
        """Our own delivery errors (raised by `format` or a guard) already say what next."""
        kind = Kind.RETRY if exc.retryable else Kind.PERMANENT
        broken = bool(getattr(exc, "broken", False))
        return cls(kind, exc.code, exc.message, exc.response, broken=broken)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]  # a required credential or name


def unexpected(exc: BaseException) -> Failure:
    """An exception no type's table knows is a bug: logged with its traceback, then
    retried on the schedule (so a fixed deploy delivers it; exhausted retries still
    dead-letter it), under its own code so the attempt log does not blame the network."""
    log.exception("unexpected_delivery_error", exc_info=exc)
    return Failure(Kind.RETRY, "internal_error", f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Schema:
    """What `GET /destination-types` shows and what create/update accept. A credential
    field marked `"sensitive": True` is masked in every API response."""

    type: str
    label: str
    description: str
    config_model: builtins.type[BaseModel]
    credentials_model: builtins.type[BaseModel]
    config_fields: list[dict[str, Any]]
    credential_fields: list[dict[str, Any]]
    icon: str = ""  # an SVG string, as Outpost's destination-types carry
    instructions: str = ""  # Markdown shown beside the form
    setup_link: dict[str, str] | None = None  # {"href", "cta"}: a managed-setup flow
    # credentials sealed at rest like every other but shown in full in API responses,
    # because whoever holds the destination needs them (the webhook's signing secrets)
    revealed: frozenset[str] = frozenset()

    @property
    def sensitive(self) -> frozenset[str]:
        return frozenset(f["key"] for f in self.credential_fields if f.get("sensitive"))

    @property
    def masked(self) -> frozenset[str]:
        """The credentials every API response masks."""
        return self.sensitive - self.revealed

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "label": self.label,
            "description": self.description,
            "icon": self.icon,
            "instructions": self.instructions,
            "config_fields": self.config_fields,
            "credential_fields": self.credential_fields,
        }
        if self.setup_link is not None:  # optional in Outpost's schema, never null
            out["setup_link"] = self.setup_link
        return out


class DestinationType:
    """The interface. `schema`, `target`, `format`, `send` and `classify` are the type's
    own; the rest are defaults a type overrides when it batches or orders by a key."""

    schema: ClassVar[Schema]

    @property
    def type(self) -> str:
        return self.schema.type

    def validate(
        self, config: dict[str, Any], credentials: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Both checked at once; ValidationFailed names every bad field."""
        found: list[str] = []
        out: list[dict[str, Any]] = []
        for model, value, prefix in (
            (self.config_model_for(config) or self.schema.config_model, config, "config."),
            (
                self.credentials_model_for(credentials) or self.schema.credentials_model,
                credentials,
                "credentials.",
            ),
        ):
            try:
                out.append(model.model_validate(value).model_dump(exclude_none=True))
            except ValidationError as exc:
                found.extend(problems(exc, prefix))
        if found:
            raise ValidationFailed(found)
        return out[0], out[1]

    def config_model_for(self, config: dict[str, Any]) -> builtins.type[BaseModel] | None:
        """Another model for this config (Kinesis's stream_arn form); None: the schema's."""
        return None

    def credentials_model_for(self, credentials: dict[str, Any]) -> builtins.type[BaseModel] | None:
        """Another model for these credentials (an AWS role); None: the schema's."""
        return None

    def prepare_credentials(
        self,
        merged: dict[str, Any],
        sent: dict[str, Any],
        current: dict[str, Any] | None,
        admin: bool,
    ) -> dict[str, Any]:
        """The credentials to validate and store. `sent`: the body's credentials as they
        came; `merged`: those merged over `current` (the stored ones; None at create);
        `admin`: the caller holds the admin key. A type that generates or guards its
        credentials (the webhook's signing secret) overrides this; raises
        ValidationFailed naming the field."""
        return merged

    def shown_credentials(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """The credentials an API response shows (before masking): all by default; the
        webhook leaves out a previous secret whose window has ended, as Outpost does."""
        return credentials

    async def verify(self, dest: Destination, previous: Destination | None) -> Destination:
        """What only the service itself can say about a created or updated destination
        (Hookdeck checks its token and names the source). `previous`: the stored version
        on update. Raises ValidationFailed naming the field; the default checks nothing."""
        return dest

    def target(self, config: dict[str, Any]) -> str:
        """Where it delivers, as the API shows it (a stream name, a URL)."""
        raise NotImplementedError

    def target_url(self, config: dict[str, Any]) -> str | None:
        return None

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """(config field, URL) of every address the tenant gave: the endpoint guard checks
        each at create and update. A type whose sends reach other fields than
        `config.endpoint` (brokers, hosts) names them here, and guards them at send."""
        endpoint = config.get("endpoint")
        return [("endpoint", endpoint)] if isinstance(endpoint, str) and endpoint else []

    def ordering_key(self, event: Event, destination: Destination) -> str:
        """Events with the same key are delivered in order when the destination is
        `ordered` (publish picks the task's sub-lane with it). Must be cheap: it runs at
        publish time."""
        return event.id

    def ordered(self, destination: Destination) -> bool:
        """Whether this destination delivers the events of one ordering key in publish
        order, across retries and crashes (a failing head holds its key's sub-lane)."""
        return False

    def lane_key(self, event: Event, destination: Destination) -> str | OrderedBy:
        """What picks the task's lane at publish, replay and manual retry: the ordering
        key for an `ordered` destination, else "" (the destination's one lane; no key is
        computed, so an unordered destination pays no template at publish)."""
        if self.ordered(destination):
            return OrderedBy(self.ordering_key(event, destination))
        return ""

    def format(self, event: Event, destination: Destination) -> Any:
        """The record to send. Pure; raises PermanentError for an event that can never
        be sent (too large, a key the target refuses)."""
        raise NotImplementedError

    async def send(self, record: Any, destination: Destination) -> Result:
        """One record, sent alone. Raises whatever the transport raises: `classify` says
        what it means."""
        raise NotImplementedError

    def batching(self, destination: Destination) -> bool:
        """Whether this destination's records go through `send_batch`."""
        return False

    def patience(self, destination: Destination) -> float:
        """Seconds a record may wait before its call begins (a batch filling): the worker
        adds it to the attempt's deadline (DELIVERY_TIMEOUT_SECONDS and a margin)."""
        return 0.0

    async def send_batch(
        self, records: Sequence[Any], destination: Destination
    ) -> list[Awaitable[Result]]:
        """Hand records to the type's batcher (which may gather other callers' records
        into the same call). One awaitable per record, in order: each fails alone, so a
        partial failure retries only the records that failed."""
        return [self.send(record, destination) for record in records]

    def classify(self, exc: BaseException) -> Failure:
        """What a failed format or send means. Our DeliveryErrors say it themselves; an
        exception the type's table does not know goes to `unexpected`."""
        if isinstance(exc, DeliveryError):
            return Failure.of(exc)
        return unexpected(exc)

    async def preflight(self, destination: Destination) -> list[dict[str, Any]]:
        """`POST .../destinations/{id}/test`: checks that a delivery would work, each
        `{"name", "ok", "message", ...details}` naming its cause when it fails."""
        return [{"name": "preflight", "ok": True, "message": "no checks for this type"}]

    async def explore(
        self, destination: Destination, stream: str | None, limit: int
    ) -> dict[str, Any] | None:
        """What the destination's credentials can see: `{"ok", "message", "streams"}`, or
        with `stream` its latest `limit` records (`"records"`); None: nothing to explore."""
        return None

    async def trust_policy(self, destination: Destination) -> dict[str, Any] | None:
        """The policies a tenant puts on the role this destination assumes; None: the
        destination assumes no role."""
        return None

    async def close(self) -> None:
        return None


def problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """pydantic errors → Outpost's list of readable messages, each naming its field."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        name = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body"
        if err["type"] == "missing":
            out.append(f"{name} is required")
        elif err["type"] == "extra_forbidden":
            out.append(f"{name} is not a known field")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"{name}: {msg[:1].lower()}{msg[1:]}")
    return out
