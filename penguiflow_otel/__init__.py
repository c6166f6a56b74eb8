"""penguiflow_otel."""
