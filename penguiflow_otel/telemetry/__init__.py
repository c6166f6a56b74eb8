"""OpenTelemetry integration (filled in by the telemetry work)."""
