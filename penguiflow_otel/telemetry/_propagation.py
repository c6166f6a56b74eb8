"""Helpers of :mod:`penguiflow_otel.propagation`: reading inbound carriers case-insensitively.

HTTP header names are case-insensitive and arrive in several shapes: a mapping (``{"Traceparent": ...}``,
values possibly lists), a list of ``(name, value)`` pairs, or ASGI's list of byte pairs. They are
normalised once into lower-case names mapped to lists of values, which :data:`CARRIER_GETTER` reads.
Only ``opentelemetry-api`` is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

from opentelemetry.propagators.textmap import Getter

__all__ = ["CARRIER_GETTER", "Carrier", "NormalizedCarrier", "normalize_carrier"]

HeaderText: TypeAlias = str | bytes
Carrier: TypeAlias = Mapping[str, str | Iterable[str]] | Iterable[tuple[HeaderText, HeaderText]]
"""Inbound headers: a mapping, or ``(name, value)`` pairs of ``str`` or (ASGI) ``bytes``."""
NormalizedCarrier: TypeAlias = dict[str, list[str]]


def _text(value: HeaderText) -> str:
    # ASGI header bytes are latin-1 (RFC 9110 field values are ISO-8859-1 compatible).
    return value.decode("latin-1") if isinstance(value, bytes) else value


def normalize_carrier(carrier: Carrier) -> NormalizedCarrier:
    """Lower-cased header names mapped to every value given for them, in order."""
    headers: NormalizedCarrier = {}
    pairs: Iterable[tuple[HeaderText, object]] = carrier.items() if isinstance(carrier, Mapping) else carrier
    for name, value in pairs:
        values = headers.setdefault(_text(name).lower(), [])
        if isinstance(value, str | bytes):
            values.append(_text(value))
        elif isinstance(value, Iterable):
            values.extend(_text(item) for item in value if isinstance(item, str | bytes))
    return headers


class _NormalizedGetter(Getter[NormalizedCarrier]):
    """Reads a :func:`normalize_carrier` result; the key's case does not matter."""

    def get(self, carrier: NormalizedCarrier, key: str) -> list[str] | None:
        values = carrier.get(key.lower())
        return list(values) if values else None

    def keys(self, carrier: NormalizedCarrier) -> list[str]:
        return list(carrier)


CARRIER_GETTER = _NormalizedGetter()
