"""Runtime telemetry options that apply whatever provider is in use (``configure(tenant=...,
quiet_nodes=...)``; environment ``PENGUIFLOW_OTEL_TENANT``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = ["TENANT_MODES", "TelemetryOptions", "current_options", "set_options"]

TenantMode: TypeAlias = Literal["off", "spans", "spans+metrics"]
TENANT_MODES: tuple[TenantMode, ...] = ("off", "spans", "spans+metrics")
_logger = logging.getLogger("penguiflow_otel.telemetry")


@dataclass(frozen=True, slots=True)
class TelemetryOptions:
    """How much of a tenant goes on telemetry, and which nodes get no spans."""

    tenant: TenantMode = "spans"
    quiet_nodes: frozenset[str] = field(default_factory=frozenset)


def _from_env() -> TelemetryOptions:
    raw = os.environ.get("PENGUIFLOW_OTEL_TENANT")
    if raw is None:
        return TelemetryOptions()
    value = raw.strip().lower()
    if value not in TENANT_MODES:
        _logger.warning(
            "PENGUIFLOW_OTEL_TENANT=%r is not one of off, spans, spans+metrics; using 'spans'", raw
        )
        return TelemetryOptions()
    return TelemetryOptions(tenant=value)


_OPTIONS: TelemetryOptions | None = None


def current_options() -> TelemetryOptions:
    """The options in force (``configure()``'s, else the environment's, else the defaults)."""
    global _OPTIONS
    if _OPTIONS is None:
        _OPTIONS = _from_env()
    return _OPTIONS


def set_options(*, tenant: str | None = None, quiet_nodes: Collection[str] | None = None) -> TelemetryOptions:
    """Replace the options; ``ValueError`` for a tenant mode that does not exist."""
    global _OPTIONS
    base = current_options()
    if tenant is not None and tenant not in TENANT_MODES:
        raise ValueError(f"tenant must be one of 'off', 'spans', 'spans+metrics'; got {tenant!r}")
    _OPTIONS = TelemetryOptions(
        tenant=tenant if tenant is not None else base.tenant,
        quiet_nodes=frozenset(quiet_nodes) if quiet_nodes is not None else base.quiet_nodes,
    )
    return _OPTIONS
