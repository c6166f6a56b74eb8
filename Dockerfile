# The demo service's image for docker-compose.yml: `penguiflow-otel demo --serve`. Not built by the test
# suite (tests/dashboards/test_compose.py checks it statically).
FROM python:3.11.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/penguiflow/.venv \
    PATH="/opt/penguiflow/.venv/bin:${PATH}"

RUN groupadd --system --gid 10001 penguin \
    && useradd --system --uid 10001 --gid penguin --create-home --home-dir /home/penguin penguin

WORKDIR /opt/penguiflow
# Dependencies first (cached while only the code changes), exactly as uv.lock pins them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY penguiflow_otel ./penguiflow_otel
RUN uv sync --locked --no-dev

USER penguin
WORKDIR /home/penguin
EXPOSE 9464
ENTRYPOINT ["penguiflow-otel"]
CMD ["demo", "--serve", "--port", "9464"]
