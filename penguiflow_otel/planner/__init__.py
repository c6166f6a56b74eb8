"""The ReactPlanner: an LLM plans over a typed tool catalog, with GenAI-convention telemetry.

Importing ``penguiflow_otel`` never loads this package; import it explicitly.
"""

from .._public import publish
from ._actions import FinalPayload, PlannerAction
from ._catalog import NodeSpec, ToolPolicy
from ._clamp import ObservationGuardrailConfig
from ._context import PlannerPauseReason, ToolContext
from ._errors import InvalidLLMOutputError, PauseTokenError
from ._events import PlannerEvent
from ._memory import MemoryBudget, MemoryIsolation, MemoryKey, ShortTermMemory, ShortTermMemoryConfig
from ._node import PlannerRequest, PlannerResumeRequest, planner_node
from ._pause import InMemoryPlannerStateStore, PlannerStateStore
from ._planner import ReactPlanner
from ._results import PlannerFinish, PlannerPause
from ._trajectory import Trajectory, TrajectoryStep

__all__ = [
    "FinalPayload",
    "InMemoryPlannerStateStore",
    "InvalidLLMOutputError",
    "MemoryBudget",
    "MemoryIsolation",
    "MemoryKey",
    "NodeSpec",
    "ObservationGuardrailConfig",
    "PauseTokenError",
    "PlannerAction",
    "PlannerEvent",
    "PlannerFinish",
    "PlannerPause",
    "PlannerPauseReason",
    "PlannerRequest",
    "PlannerResumeRequest",
    "PlannerStateStore",
    "ReactPlanner",
    "ShortTermMemory",
    "ShortTermMemoryConfig",
    "ToolContext",
    "ToolPolicy",
    "Trajectory",
    "TrajectoryStep",
    "planner_node",
]

NodeSpec.__module__ = "penguiflow_otel.catalog"  # its home facade, also when only the planner is imported
publish(__name__, globals(), __all__)
