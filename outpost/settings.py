"""Service settings, read from the environment with Outpost's variable names."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

CommaList = Annotated[list[str], NoDecode]
# The key is SHA-256 of the secret, so any length works; fewer than 16 bytes is guessable.
AES_SECRET_MIN_BYTES = 16
JWT_SECRET_MIN_BYTES = 32


# The Go text/template actions the DESTINATIONS_WEBHOOK_* templates may use (Outpost's
# defaults and their variations); destinations/webhook/template.py renders exactly these.
_ACTIONS = {
    "destinations_webhook_signature_content_template": r"\.(Body|EventID|Topic|Timestamp\.Unix)",
    "destinations_webhook_signature_header_template": (
        r'\.(EventID|Topic|Timestamp\.Unix)|\.Signatures\s*\|\s*join\s+"(?:[^"\\]|\\.)*"'
        r"|index\s+\.Signatures\s+\d+"
    ),
    "destinations_webhook_signing_secret_template": (
        r"\.(RandomHex|RandomBase64|RandomAlphanumeric)"
    ),
}
_HEADER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")  # as Outpost checks pinned names
_RESERVED = {"content-type", "content-length", "host", "connection", "user-agent"}
_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


_MIN_BYTES = {  # secret -> (least bytes, why)
    "api_jwt_secret": (JWT_SECRET_MIN_BYTES, "it signs HS256 tenant tokens"),
    "aes_encryption_secret": (AES_SECRET_MIN_BYTES, "it keys AES-256-GCM for credentials at rest"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    api_host: str = "0.0.0.0"
    api_port: int = Field(3333, ge=1, le=65535)
    api_key: str = ""
    api_jwt_secret: str = ""
    api_jwt_ttl_seconds: int = Field(24 * 3600, ge=60)
    api_auth_disabled: bool = False  # explicit; an empty API_KEY alone never turns auth off
    # publish requests in progress per API process; more are answered 503 at once (0 = off)
    api_max_inflight_publishes: int = Field(500, ge=0)
    # slow clients: a request's head, then its body, must arrive within these
    api_header_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    api_body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    api_max_connections: int = Field(1000, ge=1)  # more: answered 503 and closed at once
    aes_encryption_secret: str = ""
    # old secrets still accepted for reading while `outpost rotate-key` re-encrypts
    aes_encryption_secret_previous: CommaList = []

    # /metrics: a `tenant` label on the event and delivery counters (one series per tenant:
    # only for deployments with few tenants); seconds between refreshes of the queue gauges
    # (depth, oldest age, retries, dead letters; 0 = never)
    metrics_per_tenant: bool = False
    metrics_refresh_seconds: float = Field(15.0, ge=0, le=3600)
    # one JSON log line per API request (method, route template, status, duration, tenant)
    access_log: bool = True

    # the probe port of `outpost worker|source|api|all`: GET /healthz (the process is alive,
    # never touches Redis) and GET /readyz (Redis answers, the process's loops run); 0 = off.
    # Kubernetes sets HEALTH_HOST to the pod's IP (kubelet probes that address).
    health_host: str = "127.0.0.1"
    health_port: int = Field(0, ge=0, le=65535)

    redis_url: str = ""
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: str = ""
    redis_database: int = Field(0, ge=0)
    # one command's answer (above the worker's 1 s blocking read and a large group commit)
    redis_socket_timeout_seconds: float = Field(5.0, ge=2, le=300)
    redis_connect_timeout_seconds: float = Field(2.0, gt=0, le=60)
    # Redis Cluster (or a managed cluster: ElastiCache/MemoryDB cluster mode): the host/port
    # or URL is any node; the client learns the rest from it
    redis_cluster_enabled: bool = False
    # TLS (also a rediss:// URL): the CA that signed the server's certificate ("" = the
    # system's), our certificate and key when the server asks for one (mutual TLS)
    redis_tls_enabled: bool = False
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_tls_verify: bool = True  # false: any certificate is accepted (said in the log)
    redis_username: str = ""  # an ACL user (REDIS_PASSWORD is its password)
    # durability: a publish answers 202 once this many replicas have its write (WAIT);
    # fewer within the timeout: 503 (the event is stored on the master)
    redis_wait_replicas: int = Field(0, ge=0, le=16)
    redis_wait_timeout_ms: int = Field(1000, ge=1, le=60_000)

    deployment_id: str = Field("", pattern=r"^[A-Za-z0-9_-]{0,64}$")
    topics: CommaList = []
    topics_allow_wildcards: bool = False
    portal_referer_url: str = ""  # where GET /tenants/{id}/portal sends a tenant's users

    destinations_aws_kinesis_metadata_in_payload: bool = True
    # the Source of every EventBridge entry (rules match on it), as Outpost's setting
    destinations_aws_eventbridge_source: str = Field("outpost", min_length=1, max_length=256)
    destinations_allow_private_endpoints: bool = False
    # AWS types with credentials.role_arn: STS AssumeRole with the service's own credentials
    aws_role_session_duration_seconds: int = Field(3600, ge=900, le=43200)
    aws_roles_only: bool = False  # refuse static keys in destinations: roles only
    aws_role_principal_arn: str = ""  # the principal tenants trust; "" = GetCallerIdentity
    # webhooks as Outpost signs them (its DESTINATIONS_WEBHOOK_* names and defaults)
    destinations_webhook_header_prefix: str = "x-outpost-"
    # the four system headers by full name: "" = not sent; the default, literally
    # "<prefix>" + key, stands for Outpost's unset (the prefix, then the key)
    destinations_webhook_event_id_header_name: str = "<prefix>event-id"
    destinations_webhook_signature_header_name: str = "<prefix>signature"
    destinations_webhook_timestamp_header_name: str = "<prefix>timestamp"
    destinations_webhook_topic_header_name: str = "<prefix>topic"
    # deprecated in Outpost for the names above ("" disables); still honoured
    destinations_webhook_disable_default_event_id_header: bool = False
    destinations_webhook_disable_default_signature_header: bool = False
    destinations_webhook_disable_default_timestamp_header: bool = False
    destinations_webhook_disable_default_topic_header: bool = False
    # the timestamp header: the event's time in Unix seconds (every type's metadata) or
    # RFC 3339 (the format of Outpost's default mode)
    destinations_webhook_timestamp_format: Literal["unix", "rfc3339"] = "unix"
    destinations_webhook_signature_content_template: str = "{{.Body}}"
    destinations_webhook_signature_header_template: str = 'v0={{.Signatures | join ","}}'
    destinations_webhook_signature_encoding: Literal["hex", "base64"] = "hex"
    destinations_webhook_signature_algorithm: Literal["hmac-sha256", "hmac-sha1"] = "hmac-sha256"
    destinations_webhook_signing_secret_template: str = "whsec_{{.RandomHex}}"
    # a receiver's answer kept on the attempt (longer: cut, marked)
    destinations_webhook_max_response_body_bytes: int = Field(4096, ge=0, le=1024 * 1024)
    destinations_hookdeck_url: str = "https://hkdk.events"  # where Hookdeck sources live
    destinations_hookdeck_api_url: str = "https://api.hookdeck.com"  # verifies tokens
    delivery_timeout_seconds: float = Field(5.0, gt=0, le=300)  # one send, whole call
    delivery_connect_timeout_seconds: float = Field(2.0, gt=0, le=300)  # its connection
    # a destination whose sends go unanswered (timeouts, connections) this many times in a
    # row is paused (0 = never): nothing is sent to it for the cooldown, then one probe
    delivery_circuit_breaker_failures: int = Field(5, ge=0, le=100_000)
    delivery_circuit_breaker_cooldown_seconds: float = Field(5.0, gt=0, le=3600)
    delivery_circuit_breaker_max_cooldown_seconds: float = Field(300.0, gt=0, le=86_400)
    delivery_max_concurrency: int = Field(64, ge=1, le=4096)
    # tasks of batching destinations a worker holds at once (they wait to fill PutRecords)
    delivery_batch_max_inflight: int = Field(2000, ge=1, le=100_000)
    delivery_partitions: int = Field(16, ge=1, le=1024)
    # sub-lanes of a destination that delivers in order per key (`config.ordering`): keys
    # in one share a lane, so a failing head holds 1/N of the keys. Changing it moves keys
    # to other sub-lanes: change it with the ordered destinations drained
    delivery_ordering_lanes: int = Field(64, ge=1, le=4096)
    # one destination's unbatched deliveries in flight per worker (batched: the same share
    # of DELIVERY_BATCH_MAX_INFLIGHT), so a hanging endpoint cannot take every slot
    delivery_max_inflight_per_destination: int = Field(32, ge=1, le=4096)
    delivery_reclaim_idle_seconds: float = Field(60.0, gt=0)
    max_destinations_per_tenant: int = Field(20, ge=1)
    max_event_bytes: int = Field(1024 * 1024, ge=1024)
    max_json_depth: int = Field(64, ge=8, le=512)  # nested objects/lists of a request body
    # a destination filter is matched against every publish of its tenant
    filter_max_depth: int = Field(16, ge=2, le=64)
    filter_max_bytes: int = Field(16 * 1024, ge=256, le=1024 * 1024)
    publish_rate_limit_per_second: int = Field(0, ge=0)  # per tenant; 0 = off
    max_retry_limit: int = Field(10, ge=0, le=100)
    retry_interval_seconds: float = Field(30.0, gt=0)
    retry_schedule: Annotated[list[float], NoDecode] = []
    event_retention_seconds: int = Field(7 * 24 * 3600, ge=60)
    # the bounds of a destination's own delivery_overrides (beyond them: 422); a timeout
    # must also stay under DELIVERY_RECLAIM_IDLE_SECONDS
    destination_max_retry_limit: int = Field(20, ge=0, le=100)
    destination_max_timeout_seconds: float = Field(30.0, gt=0, le=300)
    attempts_max_per_destination: int = Field(10_000, ge=10)
    log_max_per_tenant: int = Field(100_000, ge=100)
    log_max_total: int = Field(1_000_000, ge=100)

    # one Flow Service explore: ListStreams pages and seconds before a partial listing
    flow_explore_max_pages: int = Field(50, ge=1, le=10_000)
    flow_explore_seconds: float = Field(10.0, gt=0, le=300)
    # explore?preview=true: at most this much of an S3 object is fetched (a ranged GET)
    flow_preview_max_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    source_lease_seconds: float = Field(10.0, gt=0)
    source_poll_seconds: float = Field(1.0, gt=0)
    source_batch_limit: int = Field(1000, ge=1, le=10_000)
    # a streaming flow's run: one window of this length (Adobe reports hourly windows)
    flow_run_window_seconds: float = Field(3600.0, gt=0, le=7 * 24 * 3600)
    alert_consecutive_failure_count: int = Field(100, ge=1)
    alert_auto_disable_destination: bool = False
    operator_events_http_url: str = ""
    operator_events_http_signing_secret: str = ""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    @field_validator("api_jwt_secret", "aes_encryption_secret")
    @classmethod
    def _long_enough(cls, v: str, info: ValidationInfo) -> str:
        # only the current AES secret: old ones in _PREVIOUS stay readable whatever their length
        least, why = _MIN_BYTES[info.field_name or ""]
        if v and len(v.encode()) < least:
            raise ValueError(f"must be at least {least} bytes ({why})")
        return v

    @field_validator(*_ACTIONS)
    @classmethod
    def _template(cls, v: str, info: ValidationInfo) -> str:
        allowed = re.compile(_ACTIONS[info.field_name or ""])
        for action in _ACTION.findall(v):
            if not allowed.fullmatch(action):
                raise ValueError(f"{{{{{action}}}}} is not supported here")
        if _ACTION.sub("", v).count("{{") or _ACTION.sub("", v).count("}}"):
            raise ValueError("unbalanced {{ }}")
        if not _ACTION.search(v) and "secret" in (info.field_name or ""):
            raise ValueError("must contain a random part such as {{.RandomHex}}")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str) -> str:
        """Checked here so a bad URL is a config error, not a traceback at connect time.
        The value is never echoed (it may hold a password)."""
        if not v:
            return v
        scheme = urlsplit(v).scheme
        if scheme not in ("redis", "rediss", "unix"):
            got = f"scheme {scheme!r}" if scheme else "no scheme"
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL ({got})")
        try:
            parse_url(v)
        except ValueError as exc:
            raise ValueError(f"not a valid Redis URL: {exc}") from None
        return v

    @field_validator("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")
    @classmethod
    def _readable(cls, v: str) -> str:
        if v and not os.access(v, os.R_OK):
            raise ValueError("no such file, or not readable")
        return v

    @model_validator(mode="after")
    def _redis_pairs(self) -> Settings:
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            raise ValueError("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together (mutual TLS)")
        if self.redis_wait_timeout_ms >= self.redis_socket_timeout_seconds * 1000:
            raise ValueError(
                "REDIS_WAIT_TIMEOUT_MS must stay under REDIS_SOCKET_TIMEOUT_SECONDS "
                "(the WAIT's answer would time out first)"
            )
        if self.redis_cluster_enabled and self.redis_database:
            raise ValueError("REDIS_DATABASE must be 0 on a cluster (it has only database 0)")
        return self

    @field_validator("topics", "aes_encryption_secret_previous", mode="before")
    @classmethod
    def _split_topics(cls, v: object) -> object:
        if isinstance(v, str):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, v: object) -> object:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("retry_schedule")
    @classmethod
    def _positive_schedule(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("every delay must be a positive number of seconds")
        return v

    @model_validator(mode="after")
    def _reclaim_after_timeout(self) -> Settings:
        if self.delivery_reclaim_idle_seconds <= self.delivery_timeout_seconds:
            raise ValueError(
                "DELIVERY_RECLAIM_IDLE_SECONDS must exceed DELIVERY_TIMEOUT_SECONDS, "
                "or live deliveries would be claimed twice"
            )
        return self

    @model_validator(mode="after")
    def _webhook_header_names(self) -> Settings:
        seen: dict[str, str] = {}
        for key, name in self.webhook_header_names().items():
            if name is None:
                continue
            if not _HEADER.fullmatch(name) or name.lower() in _RESERVED:
                what = "reserved" if name.lower() in _RESERVED else "not a header name"
                raise ValueError(f"webhook {key} header {name!r} is {what}")
            if name.lower() in seen:
                raise ValueError(
                    f"webhook {seen[name.lower()]} and {key} headers are both {name!r}: "
                    "set distinct DESTINATIONS_WEBHOOK_*_HEADER_NAME values or disable one"
                )
            seen[name.lower()] = key
        return self

    def webhook_header_names(self) -> dict[str, str | None]:
        """The webhook's system headers (event-id, signature, timestamp, topic) by full
        name, None when not sent: Outpost's three-state *_HEADER_NAME rule (its unset is
        our default, `<prefix><key>`), the deprecated DISABLE_DEFAULT_* flags applying
        where no name is set."""
        prefix = self.destinations_webhook_header_prefix.strip()
        out: dict[str, str | None] = {}
        for key, attr in (
            ("event-id", "event_id"),
            ("signature", "signature"),
            ("timestamp", "timestamp"),
            ("topic", "topic"),
        ):
            name = getattr(self, f"destinations_webhook_{attr}_header_name")
            disabled = getattr(self, f"destinations_webhook_disable_default_{attr}_header")
            if name == f"<prefix>{key}":
                out[key] = None if disabled else prefix + key
            else:
                out[key] = name.strip() or None
        return out

    def redis_dsn(self) -> str:
        if self.redis_url:
            return self.redis_url
        auth = ""
        if self.redis_password or self.redis_username:
            user = quote(self.redis_username, safe="")
            auth = f"{user}:{quote(self.redis_password, safe='')}@"
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_database}"

    def check_service_secrets(self) -> list[str]:
        """Secrets a serving process cannot run without; one message per missing one."""
        problems = []
        if not self.api_key and not self.api_auth_disabled:
            problems.append(
                "API_KEY: required (the admin key for the API; "
                "API_AUTH_DISABLED=true runs with no auth at all)"
            )
        if not self.aes_encryption_secret:
            problems.append("AES_ENCRYPTION_SECRET: required (encrypts credentials at rest)")
        return problems


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per bad setting, named by its environment variable."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        value = err.get("input")
        shown = "" if isinstance(value, dict) or name in _SECRET_NAMES else f" (got {value!r})"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg}{shown}")
    return lines


_SECRET_NAMES = {
    "API_KEY",
    "API_JWT_SECRET",
    "AES_ENCRYPTION_SECRET",
    "AES_ENCRYPTION_SECRET_PREVIOUS",
    "REDIS_PASSWORD",
    "REDIS_URL",  # may hold a password
    "OPERATOR_EVENTS_HTTP_SIGNING_SECRET",
}
