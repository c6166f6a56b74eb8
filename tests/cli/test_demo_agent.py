"""The demo's ``agent`` stage (planner.md section 8.3): a scripted planner on every trace, its spans in
the shown trace, its GenAI metrics in the summary, and content on spans only with ``--capture-content``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loopback import clean_env

from penguiflow_otel.cli import main

CALLS = {
    "call_0": "lookup_order",
    "call_1_0": "get_weather",
    "call_1_1": "get_weather",
    "call_1_join": "compare",
}
CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}
SHOWN_ANSWER = "order-0 (2 items) ships from Lima to Oslo; Lima is 21.5 °C warmer than Oslo."


@dataclass(frozen=True)
class DemoRun:
    """What one ``demo --json`` run printed and exported."""

    report: dict[str, Any]
    spans: list[dict[str, Any]]

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The exported spans of one trace (32 hex digits)."""
        return [span for span in self.spans if span["context"]["trace_id"] == f"0x{trace_id}"]

    def shown(self) -> list[dict[str, Any]]:
        """The exported spans of the trace the report shows."""
        return self.trace(self.report["shown_trace_id"])


def run_demo(directory: Path, *args: str) -> DemoRun:
    """Run ``demo --json`` with ``args``, spans to ``directory/spans.jsonl``."""
    traces = directory / "spans.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "penguiflow_otel.cli._main", "demo", "--json",
         "--traces-file", str(traces), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    return DemoRun(json.loads(done.stdout), spans)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One run of eight traces without ``--capture-content``, read by several tests."""
    return run_demo(tmp_path_factory.mktemp("plain"), "--messages", "8")


def named(spans: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The spans called ``name``, in start order."""
    return sorted((span for span in spans if span["name"] == name), key=lambda span: span["start_time"])


def tree_depths(lines: Iterable[str]) -> list[tuple[int, str]]:
    """``(depth, span name)`` of each rendered span-tree line (two spaces per level)."""
    found = []
    for line in lines:
        text = line.lstrip(" ")
        found.append(((len(line) - len(text)) // 2, text.split("  ", 1)[0]))
    return found


def test_the_report_gives_the_shown_traces_answer_and_finish_reason(plain: DemoRun) -> None:
    """The agent answered the shown trace from its tools' results, finishing answer_complete."""
    assert plain.report["agent"] == {
        "name": "order_agent",
        "answer": SHOWN_ANSWER,
        "finish_reason": "answer_complete",
    }


def test_the_shown_trace_nests_the_planner_spans_under_the_agent_node(plain: DemoRun) -> None:
    """node agent -> invoke_agent -> plan -> chat; tool spans are children of invoke_agent, with call ids."""
    spans = plain.shown()
    by_id = {span["context"]["span_id"]: span for span in spans}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_id"]]

    (agent,) = named(spans, "invoke_agent order_agent")
    assert parent(agent)["name"] == "node agent"
    ancestor = parent(agent)
    while ancestor["parent_id"] is not None:
        ancestor = parent(ancestor)
    assert ancestor["name"] == "flow demo"
    plans = named(spans, "plan order_agent")
    assert [plan["attributes"]["penguiflow.planner.action"] for plan in plans] == [
        "lookup_order",
        "parallel",
        "final_response",
    ]
    assert all(parent(plan) is agent for plan in plans)
    chats = named(spans, "chat scripted-demo")
    assert [parent(chat) for chat in chats] == [plans[0], plans[1], plans[1], plans[2]]
    for chat in chats:
        assert chat["kind"] == "SpanKind.CLIENT"
        assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
        assert chat["attributes"]["gen_ai.usage.output_tokens"] > 0
        assert chat["attributes"]["gen_ai.request.stream"] is True
        assert chat["attributes"]["gen_ai.response.time_to_first_chunk"] >= 0
    tools = [span for span in spans if span["name"].startswith("execute_tool ")]
    assert all(parent(tool) is agent for tool in tools)
    assert {
        tool["attributes"]["gen_ai.tool.call.id"]: tool["attributes"]["gen_ai.tool.name"] for tool in tools
    } == CALLS
    assert len(tools) == len(CALLS)


def test_the_repaired_reply_shows_on_its_plan_span(plain: DemoRun) -> None:
    """The unparseable reply gives a repair event on the parallel plan, which made a second chat call."""
    (repaired,) = [
        plan
        for plan in named(plain.shown(), "plan order_agent")
        if plan["attributes"]["penguiflow.planner.repair.count"]
    ]
    assert repaired["attributes"]["penguiflow.planner.action"] == "parallel"
    assert repaired["attributes"]["penguiflow.planner.repair.count"] == 1
    (event,) = [event for event in repaired["events"] if event["name"] == "penguiflow.planner.repair"]
    assert event["attributes"]["error.type"] == "json_decode"
    assert repaired["status"]["status_code"] == "UNSET"


def test_the_printed_span_tree_shows_the_agent_chain_and_tool_call_ids(plain: DemoRun) -> None:
    """In the report's tree, invoke_agent sits one level under node agent, plan under it, chat under plan."""
    lines = plain.report["span_tree"]
    depths = tree_depths(lines)
    names = [name for _, name in depths]
    node = depths[names.index("node agent")][0]
    assert depths[names.index("invoke_agent order_agent")][0] == node + 1
    assert depths[names.index("plan order_agent")][0] == node + 2
    assert depths[names.index("chat scripted-demo")][0] == node + 3
    assert {depth for depth, name in depths if name.startswith("execute_tool ")} == {node + 2}
    for call_id in CALLS:
        assert sum(f"call_id={call_id})" in line for line in lines) == 1, call_id
    agent_line = next(line for line in lines if "invoke_agent order_agent" in line)
    assert "finish_reason=answer_complete" in agent_line
    assert "input_tokens=" in agent_line


def test_every_answered_trace_ran_the_same_tool_calls(plain: DemoRun) -> None:
    """Each trace that ended ok went through the agent, which made the same four tool calls."""
    answered = {
        span["context"]["trace_id"]
        for span in named(plain.spans, "flow demo")
        if span["attributes"]["penguiflow.outcome"] == "ok"
    }
    assert len(answered) == plain.report["outcomes"]["ok"] == 7
    for trace_id in answered:
        spans = [span for span in plain.spans if span["context"]["trace_id"] == trace_id]
        (agent,) = named(spans, "invoke_agent order_agent")
        assert agent["attributes"]["penguiflow.planner.finish_reason"] == "answer_complete"
        calls = {
            span["attributes"]["gen_ai.tool.call.id"]: span["attributes"]["gen_ai.tool.name"]
            for span in spans
            if span["name"].startswith("execute_tool ")
        }
        assert calls == CALLS, trace_id


def _between(value: float, ok: int, per_trace: int) -> bool:
    """``value`` counts ``per_trace`` for each answered trace, plus at most one cancelled trace's share."""
    return ok * per_trace <= value <= (ok + 1) * per_trace


def test_the_metric_summary_adds_the_genai_and_planner_metrics(plain: DemoRun) -> None:
    """Chat calls, tokens, tool runs, agent runs, steps and repairs are summed from /metrics."""
    metrics, ok = plain.report["metrics"], plain.report["outcomes"]["ok"]
    chats = metrics["gen_ai_client_operation_duration_seconds_count"]["chat"]
    assert _between(chats, ok, 4)
    assert metrics["gen_ai_client_operation_time_to_first_chunk_seconds_count"]["chat"] == chats
    tokens = metrics["gen_ai_client_token_usage_sum"]
    assert tokens["input"] > tokens["output"] > 0
    tools = metrics["gen_ai_execute_tool_duration_seconds_count"]
    assert set(tools) == {"lookup_order", "get_weather", "compare"}
    assert _between(tools["lookup_order"], ok, 1)
    assert _between(tools["get_weather"], ok, 2)
    assert _between(tools["compare"], ok, 1)
    assert _between(metrics["gen_ai_invoke_agent_duration_seconds_count"]["answer_complete"], ok, 1)
    assert _between(metrics["penguiflow_planner_steps_sum"]["ok"], ok, 3)
    assert _between(metrics["penguiflow_planner_repairs_total"]["json_decode"], ok, 1)
    assert metrics["penguiflow_planner_runs_active"] == {"order_agent": 0.0}
    assert metrics["penguiflow_planner_pauses_total"] == {}


def _content(spans: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for span in spans:
        keys = CONTENT_KEYS & set(span["attributes"])
        keys |= {
            f"event {key}"
            for event in span.get("events", ())
            for key in event["attributes"]
            if key == "penguiflow.llm.output_preview"
        }
        if keys:
            found.setdefault(span["name"], set()).update(keys)
    return found


def test_content_is_captured_only_with_the_capture_content_option(plain: DemoRun, tmp_path: Path) -> None:
    """Without the option no span holds prompts, tool arguments or answers; with it the planner spans do."""
    assert _content(plain.spans) == {}
    captured = run_demo(tmp_path, "--messages", "2", "--capture-content")
    assert captured.report["agent"]["answer"] == SHOWN_ANSWER
    assert _content(captured.shown()) == {
        "invoke_agent order_agent": {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.definitions",
        },
        "chat scripted-demo": {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
        },
        "plan order_agent": {"event penguiflow.llm.output_preview"},
        "execute_tool lookup_order": {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"},
        "execute_tool get_weather": {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"},
        "execute_tool compare": {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"},
    }
    (agent,) = named(captured.shown(), "invoke_agent order_agent")
    assert SHOWN_ANSWER in json.loads(agent["attributes"]["gen_ai.output.messages"])[0]["parts"][0]["content"]


def test_the_help_describes_the_agent_stage_and_the_capture_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``demo --help`` mentions the agent stage and lists --capture-content."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "agent stage" in out
    assert "--capture-content" in out
