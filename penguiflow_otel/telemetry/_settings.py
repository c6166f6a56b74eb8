"""``configure()``'s settings: explicit argument > environment > default (telemetry.md section 3.2).

An invalid argument raises ``ValueError`` naming the problem and the fix, before anything is built.
An invalid environment value logs one warning and falls back to the default: an operator's typo must
not stop a service. Settings the SDK reads itself (OTLP endpoint variables, headers, timeouts, BSP
sizes, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``) are not resolved here: only explicit
arguments reach the SDK constructors, so the standard variables mean what they mean elsewhere.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ._options import TENANT_MODES

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Arguments", "Settings", "resolve"]

_logger = logging.getLogger("penguiflow_otel.telemetry")

TRACES_EXPORTERS: Final = ("otlp", "console", "jsonl")
METRICS_EXPORTERS: Final = ("prometheus", "otlp", "console")
PROTOCOLS: Final = ("http/protobuf", "grpc")
SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
RATIO_SAMPLERS: Final = ("traceidratio", "parentbased_traceidratio")
DEFAULT_SAMPLER: Final = "parentbased_always_on"
DEFAULT_PROMETHEUS_HOST: Final = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT: Final = 9464
TRACES_FILE_ENV: Final = "PENGUIFLOW_OTEL_TRACES_FILE"


@dataclass(frozen=True, slots=True)
class Arguments:
    """``configure()``'s keyword arguments as given; ``None`` means "not given"."""

    service_name: object = None
    service_version: object = None
    resource_attributes: object = None
    traces: object = None
    traces_file: object = None
    metrics: object = None
    prometheus_host: object = None
    prometheus_port: object = None
    prometheus_registry: object = None
    otlp_endpoint: object = None
    otlp_protocol: object = None
    sampler: object = None
    sampler_arg: object = None
    tenant: object = None
    quiet_nodes: object = None

    def given(self) -> frozenset[str]:
        """The names of the arguments that were passed."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``configure()`` builds from, validated and with the environment applied."""

    disabled: bool
    resource_attributes: dict[str, str]
    traces: tuple[str, ...]
    traces_file: str | None
    metrics: tuple[str, ...]
    prometheus_host: str
    prometheus_port: int
    prometheus_registry: CollectorRegistry | None
    otlp_endpoint: str | None
    traces_protocol: str
    metrics_protocol: str
    sampler: str
    sampler_ratio: float
    tenant: str | None
    quiet_nodes: frozenset[str] | None
    given: frozenset[str]


def resolve(args: Arguments) -> Settings:
    """Validate ``args`` and apply the environment; ``ValueError`` for an invalid argument."""
    traces = _exporters(args.traces, "traces", "OTEL_TRACES_EXPORTER", TRACES_EXPORTERS, ("otlp",))
    sampler = _sampler(args.sampler)
    return Settings(
        disabled=_sdk_disabled(),
        resource_attributes=_resource(args),
        traces=traces,
        traces_file=_traces_file(args.traces_file, traces),
        metrics=_exporters(
            args.metrics, "metrics", "OTEL_METRICS_EXPORTER", METRICS_EXPORTERS, ("prometheus",)
        ),
        prometheus_host=_host(args.prometheus_host),
        prometheus_port=_port(args.prometheus_port),
        prometheus_registry=_registry(args.prometheus_registry),
        otlp_endpoint=_endpoint(args.otlp_endpoint),
        traces_protocol=_protocol(args.otlp_protocol, "TRACES"),
        metrics_protocol=_protocol(args.otlp_protocol, "METRICS"),
        sampler=sampler,
        sampler_ratio=_ratio(args.sampler_arg, sampler),
        tenant=_tenant(args.tenant),
        quiet_nodes=_quiet_nodes(args.quiet_nodes),
        given=args.given(),
    )


# Environment ---------------------------------------------------------------------------------

_WARNED: set[tuple[str, str]] = set()


def _env(name: str) -> str | None:
    """The variable's value, stripped; an empty value counts as unset (as the OTel spec says)."""
    value = os.environ.get(name, "").strip()
    return value or None


def _warn_env(name: str, raw: str, fallback: str) -> None:
    if (name, raw) in _WARNED:
        return
    _WARNED.add((name, raw))
    _logger.warning("ignoring %s=%r: %s", name, raw, fallback)


def _sdk_disabled() -> bool:
    raw = _env("OTEL_SDK_DISABLED")
    if raw is None or raw.lower() == "false":
        return False
    if raw.lower() == "true":
        return True
    _warn_env("OTEL_SDK_DISABLED", raw, "expected 'true' or 'false'; telemetry stays enabled")
    return False


# Resource ------------------------------------------------------------------------------------


def _text(value: object, name: str, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string such as {example!r}; got {value!r}")
    return value


def _resource(args: Arguments) -> dict[str, str]:
    attributes: dict[str, str] = {}
    given = args.resource_attributes
    if given is not None:
        if not isinstance(given, Mapping) or not all(
            isinstance(key, str) and key and isinstance(value, str) for key, value in given.items()
        ):
            raise ValueError(
                "resource_attributes must map non-empty string keys to string values, "
                f"such as {{'deployment.environment': 'prod'}}; got {given!r}"
            )
        attributes.update(given)
    version = _text(args.service_version, "service_version", "1.4.2")
    if version is not None:
        attributes["service.version"] = version
    name = _text(args.service_name, "service_name", "checkout")
    if name is not None:
        attributes["service.name"] = name
    return attributes


# Exporters -----------------------------------------------------------------------------------


def _names(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() if isinstance(item, str) else item for item in items]


def _exporters(
    arg: object, arg_name: str, env_name: str, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    choices = ", ".join(repr(name) for name in (*allowed, "none"))
    if arg is not None:
        if not isinstance(arg, str | Sequence):
            raise ValueError(
                f"{arg_name} must be a string or a sequence of exporter names ({choices}); got {arg!r}"
            )
        names = _names(arg)
        unknown = [name for name in names if name not in (*allowed, "none")]
        if unknown:
            raise ValueError(
                f"{arg_name}={arg!r}: unknown exporter {unknown[0]!r}; use one or more of {choices}"
            )
        if "none" in names and len(names) > 1:
            raise ValueError(
                f"{arg_name}={arg!r}: 'none' cannot be combined with other exporters; pass it alone"
            )
        return _exporter_tuple(names)
    raw = _env(env_name)
    if raw is None:
        return default
    names = [name.lower() for name in _names(raw)]
    if any(name not in (*allowed, "none") for name in names) or ("none" in names and len(names) > 1):
        _warn_env(env_name, raw, f"expected a comma list of {choices}; using {','.join(default)!r}")
        return default
    return _exporter_tuple(names)


def _exporter_tuple(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name in names if name != "none"))


def _traces_file(arg: object, traces: tuple[str, ...]) -> str | None:
    if arg is not None:
        if not isinstance(arg, str | os.PathLike) or not os.fspath(arg):
            raise ValueError(f"traces_file must be a path (str or os.PathLike); got {arg!r}")
        path: str | None = os.fsdecode(os.fspath(arg))
    else:
        path = _env(TRACES_FILE_ENV)
    if "jsonl" in traces and path is None:
        raise ValueError(
            f"the 'jsonl' traces exporter needs a file: pass traces_file=... or set {TRACES_FILE_ENV}"
        )
    return path


# Prometheus ----------------------------------------------------------------------------------


def _host(arg: object) -> str:
    host = _text(arg, "prometheus_host", DEFAULT_PROMETHEUS_HOST)
    if host is not None:
        return host
    return _env("OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_PROMETHEUS_HOST


def _port(arg: object) -> int:
    if arg is not None:
        if isinstance(arg, bool) or not isinstance(arg, int) or not 0 <= arg <= 65535:
            raise ValueError(
                "prometheus_port must be an int from 0 to 65535 (0 starts no server: embed "
                f"metrics_asgi_app() instead); got {arg!r}"
            )
        return arg
    raw = _env("OTEL_EXPORTER_PROMETHEUS_PORT")
    if raw is None:
        return DEFAULT_PROMETHEUS_PORT
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        _warn_env(
            "OTEL_EXPORTER_PROMETHEUS_PORT", raw, f"expected a port number; using {DEFAULT_PROMETHEUS_PORT}"
        )
        return DEFAULT_PROMETHEUS_PORT
    return port


def _registry(arg: object) -> CollectorRegistry | None:
    if arg is None:
        return None
    from prometheus_client import CollectorRegistry

    if not isinstance(arg, CollectorRegistry):
        raise ValueError(f"prometheus_registry must be a prometheus_client.CollectorRegistry; got {arg!r}")
    return arg


# OTLP ----------------------------------------------------------------------------------------


def _endpoint(arg: object) -> str | None:
    if arg is None:
        return None
    parts = urlsplit(arg) if isinstance(arg, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "otlp_endpoint must be the collector's base URL, such as 'http://localhost:4318' "
            f"(OTLP/HTTP) or 'http://localhost:4317' (gRPC); got {arg!r}"
        )
    return str(arg)


def _protocol(arg: object, signal: str) -> str:
    if arg is not None:
        if arg not in PROTOCOLS:
            raise ValueError(
                f"otlp_protocol must be 'http/protobuf' or 'grpc' (http/json is not supported); got {arg!r}"
            )
        return str(arg)
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = _env(name)
        if raw is None:
            continue
        if raw.lower() in PROTOCOLS:
            return raw.lower()
        _warn_env(name, raw, "expected 'http/protobuf' or 'grpc'; using 'http/protobuf'")
        return "http/protobuf"
    return "http/protobuf"


# Sampling ------------------------------------------------------------------------------------


def _sampler(arg: object) -> str:
    if arg is not None:
        if arg not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}; got {arg!r}")
        return str(arg)
    raw = _env("OTEL_TRACES_SAMPLER")
    if raw is None:
        return DEFAULT_SAMPLER
    if raw.lower() in SAMPLERS:
        return raw.lower()
    _warn_env("OTEL_TRACES_SAMPLER", raw, f"expected one of {', '.join(SAMPLERS)}; using {DEFAULT_SAMPLER!r}")
    return DEFAULT_SAMPLER


def _ratio(arg: object, sampler: str) -> float:
    if arg is not None:
        if isinstance(arg, bool) or not isinstance(arg, int | float) or not 0.0 <= arg <= 1.0:
            raise ValueError(
                f"sampler_arg must be a number from 0.0 to 1.0 (the sampled fraction); got {arg!r}"
            )
        if sampler not in RATIO_SAMPLERS:
            raise ValueError(
                f"sampler_arg={arg!r} applies only to a ratio sampler, and the sampler is {sampler!r}: "
                "also pass sampler='parentbased_traceidratio'"
            )
        return float(arg)
    raw = _env("OTEL_TRACES_SAMPLER_ARG")
    if raw is None or sampler not in RATIO_SAMPLERS:
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        _warn_env("OTEL_TRACES_SAMPLER_ARG", raw, "expected a number from 0.0 to 1.0; using 1.0")
        return 1.0
    return ratio


# Runtime options -----------------------------------------------------------------------------


def _tenant(arg: object) -> str | None:
    if arg is not None and arg not in TENANT_MODES:
        raise ValueError(f"tenant must be one of 'off', 'spans', 'spans+metrics'; got {arg!r}")
    return None if arg is None else str(arg)


def _quiet_nodes(arg: object) -> frozenset[str] | None:
    if arg is None:
        return None
    if isinstance(arg, str) or not isinstance(arg, Collection) or not all(isinstance(n, str) for n in arg):
        raise ValueError(f"quiet_nodes must be a collection of node names, such as ('relay',); got {arg!r}")
    return frozenset(arg)
