"""Parallel plans: setup checks, concurrent branches under ``max_parallel``, injection and the join."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ._actions import ParallelArgs, ParallelJoin, PlannerAction
from ._catalog import RESERVED_ACTIONS, NodeSpec
from ._clamp import clamp_observation
from ._execute import CallOutcome, CallPlan, execute_call, validation_details
from ._trajectory import to_jsonable

if TYPE_CHECKING:
    from ._run import Finish, Pause, PlannerRun

__all__ = ["INJECTION_SOURCES", "run_parallel"]

INJECTION_SOURCES = ("$results", "$branches", "$failures", "$success_count", "$failure_count", "$expect")


@dataclass(frozen=True, slots=True)
class _Setup:
    branches: list[CallPlan]
    join: ParallelJoin | None
    join_spec: NodeSpec | None


def _problem(loc: str, msg: str) -> dict[str, str]:
    return {"loc": loc, "msg": msg}


def _tool(run: PlannerRun, node: str, loc: str, problems: list[dict[str, str]]) -> NodeSpec | None:
    if node in RESERVED_ACTIONS:
        problems.append(_problem(loc, f"{node!r} is an opcode, not a tool"))
        return None
    spec = run.config.catalog.get(node)
    if spec is None:
        problems.append(_problem(loc, f"unknown tool {node!r}"))
    return spec


def _placeholders(expect: int) -> dict[str, Any]:
    return {
        "$results": [],
        "$branches": [],
        "$failures": [],
        "$success_count": 0,
        "$failure_count": 0,
        "$expect": expect,
    }


def _check_join(run: PlannerRun, args: ParallelArgs, problems: list[dict[str, str]]) -> NodeSpec | None:
    join = args.join
    if join is None:
        return None
    spec = _tool(run, join.node, "join.node", problems)
    for field, source in join.inject.items():
        if source not in INJECTION_SOURCES:
            problems.append(
                _problem(f"join.inject.{field}", f"unknown source {source!r}; use one of {INJECTION_SOURCES}")
            )
    if spec is None:
        return None
    values = _placeholders(len(args.steps))
    merged = {**join.args, **{f: values.get(s) for f, s in join.inject.items()}}
    try:
        spec.args_model.model_validate(merged)
    except ValidationError as exc:
        for detail in validation_details(exc):
            if detail["loc"].split(".", 1)[0] not in join.inject:  # injected values are only known later
                problems.append(_problem(f"join.args.{detail['loc']}", detail["msg"]))
    return spec


def _setup(run: PlannerRun, action: PlannerAction, index: int) -> _Setup | list[dict[str, str]]:
    try:
        args = ParallelArgs.model_validate(action.args)
    except ValidationError as exc:
        return [_problem(d["loc"], d["msg"]) for d in validation_details(exc)]
    problems: list[dict[str, str]] = []
    if not args.steps:
        problems.append(_problem("steps", "a parallel plan needs at least one step"))
    if len(args.steps) > run.config.absolute_max_parallel:
        limit = run.config.absolute_max_parallel
        problems.append(_problem("steps", f"{len(args.steps)} steps; at most {limit} may run in parallel"))
    branches: list[CallPlan] = []
    for i, step in enumerate(args.steps):
        spec = _tool(run, step.node, f"steps.{i}.node", problems)
        if spec is None:
            continue
        try:
            validated = spec.args_model.model_validate(step.args)
        except ValidationError as exc:
            problems.extend(_problem(f"steps.{i}.args.{d['loc']}", d["msg"]) for d in validation_details(exc))
            continue
        branches.append(
            CallPlan(spec, dict(step.args), validated, f"call_{index}_{i}", index, parallel_index=i)
        )
    join_spec = _check_join(run, args, problems)
    return problems or _Setup(branches, args.join, join_spec)


async def _branch(run: PlannerRun, plan: CallPlan, semaphore: asyncio.Semaphore) -> CallOutcome:
    scope = run.deadline_timeout()
    try:
        async with scope:
            await semaphore.acquire()
    except TimeoutError:
        if not scope.expired():
            raise
        message = f"the run deadline passed before branch {plan.parallel_index} could start"
        now = run.config.wall()
        failure = {"node": plan.spec.name, "args": plan.args, "error_code": "deadline", "message": message}
        return CallOutcome(plan, "error", now, now, error=message, error_code="deadline", failure=failure)
    try:
        run.hops_used += 1  # counted when the execution starts
        return await execute_call(run, plan)
    finally:
        semaphore.release()


async def _run_branches(run: PlannerRun, plans: list[CallPlan]) -> list[CallOutcome]:
    semaphore = asyncio.Semaphore(run.config.max_parallel)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_branch(run, plan, semaphore)) for plan in plans]
    return [task.result() for task in tasks]


def _injections(outcomes: list[CallOutcome]) -> dict[str, Any]:
    entries = [outcome.entry(llm_view=False) for outcome in outcomes]
    return {
        "$results": [o.observation for o in outcomes if o.status == "ok"],
        "$branches": entries,
        "$failures": [entry for entry, o in zip(entries, outcomes, strict=True) if o.status == "error"],
        "$success_count": sum(o.status == "ok" for o in outcomes),
        "$failure_count": sum(o.status == "error" for o in outcomes),
        "$expect": len(outcomes),
    }


async def _run_join(
    run: PlannerRun, setup: _Setup, outcomes: list[CallOutcome], index: int
) -> tuple[dict[str, Any], dict[str, Any], CallOutcome | None]:
    """``(entry, llm_entry, outcome)`` of the join; ``outcome`` is ``None`` when it did not run."""
    join, spec = setup.join, setup.join_spec
    assert join is not None
    assert spec is not None
    skipped = {"node": join.node, "status": "skipped"}
    if any(o.status == "pause" for o in outcomes):
        return {**skipped, "reason": "pause"}, {**skipped, "reason": "pause"}, None
    if any(o.error_code == "deadline" for o in outcomes):
        return {**skipped, "reason": "deadline"}, {**skipped, "reason": "deadline"}, None
    if any(o.status == "error" for o in outcomes) and join.on_failure == "skip":
        return {**skipped, "reason": "branch_failures"}, {**skipped, "reason": "branch_failures"}, None
    values = _injections(outcomes)
    args = {**join.args, **{field: values[source] for field, source in join.inject.items()}}
    try:
        validated: BaseModel = spec.args_model.model_validate(args)
    except ValidationError as exc:
        details = validation_details(exc)
        message = f"join args for {join.node!r} do not validate after injection"
        failure = {
            "node": join.node,
            "args": to_jsonable(join.args),
            "error_code": "invalid_args",
            "message": message,
            "details": details,
        }
        entry = {"node": join.node, "status": "error", "error": message, "failure": failure}
        return entry, entry, None
    run.hops_used += 1
    outcome = await execute_call(
        run, CallPlan(spec, to_jsonable(args), validated, f"call_{index}_join", index, join=True)
    )
    status = {"ok": "ok", "error": "error", "pause": "paused"}[outcome.status]
    return (
        {"status": status, **outcome.entry(llm_view=False)},
        {"status": status, **outcome.entry(llm_view=True)},
        outcome,
    )


def _observations(
    outcomes: list[CallOutcome], pause_index: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    full, view = [], []
    for i, outcome in enumerate(outcomes):
        entry, llm_entry = outcome.entry(llm_view=False), outcome.entry(llm_view=True)
        if outcome.status == "pause" and i != pause_index:
            entry["superseded"] = llm_entry["superseded"] = True
        full.append(entry)
        view.append(llm_entry)
    return full, view


async def run_parallel(
    run: PlannerRun, action: PlannerAction, started_at: float, llm: dict[str, Any]
) -> Finish | Pause | None:
    """Check, run and record one parallel step."""
    from ._run import Finish, Pause

    index = run.step_index
    setup = _setup(run, action, index)
    if isinstance(setup, list):
        message = "parallel plan rejected, nothing ran: " + "; ".join(
            f"{p['loc']}: {p['msg']}" for p in setup
        )
        failure = {
            "node": "parallel",
            "args": to_jsonable(action.args),
            "error_code": "parallel_setup",
            "message": message,
            "details": setup,
        }
        run.record_step(run.error_step(action, "parallel_setup", message, started_at, llm, failure=failure))
        return None
    if run.check_hops(len(setup.branches) + (setup.join is not None), action, started_at, llm):
        return None
    outcomes = await _run_branches(run, setup.branches)
    pause_index = next((i for i, o in enumerate(outcomes) if o.status == "pause"), None)
    full, view = _observations(outcomes, pause_index)
    stats = {
        "success": sum(o.status == "ok" for o in outcomes),
        "failed": sum(o.status == "error" for o in outcomes),
    }
    observation: dict[str, Any] = {"branches": full, "stats": stats}
    llm_view: dict[str, Any] = {"branches": view, "stats": stats}
    join_outcome = None
    if setup.join is not None:
        observation["join"], llm_view["join"], join_outcome = await _run_join(run, setup, outcomes, index)
    step = run.new_step("parallel", action, started_at, llm)
    step.observation = observation
    clamped = clamp_observation(llm_view, run.config.guardrail)
    step.llm_observation = clamped.value
    if clamped.method is not None:
        run.emit(
            "observation_clamped",
            original_size=clamped.original_chars,
            clamped_size=clamped.clamped_chars,
            method=clamped.method,
        )
    step.tool_call_ids = [plan.tool_call_id for plan in setup.branches] + (
        [join_outcome.plan.tool_call_id] if join_outcome is not None else []
    )
    deadline = [o for o in [*outcomes, join_outcome] if o is not None and o.error_code == "deadline"]
    if deadline:
        step.error, step.error_code = deadline[0].error, "deadline"
    run.record_step(step)
    if deadline:
        run.deadline_triggered = True
        run.budget_exhausted("deadline")
        return Finish("budget_exhausted", "deadline", deadline[0].error)
    paused = (
        outcomes[pause_index]
        if pause_index is not None
        else join_outcome
        if join_outcome and join_outcome.status == "pause"
        else None
    )
    if paused is not None:
        return Pause(paused.pause_reason, paused.pause_payload, paused.plan.tool_call_id)
    return None
