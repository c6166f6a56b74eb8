"""Routing policies for routers."""

from ._policies import DictRoutingPolicy as DictRoutingPolicy
from ._policies import PolicyCallable as PolicyCallable
from ._policies import PolicyLike as PolicyLike
from ._policies import RoutingDecisionType as RoutingDecisionType
from ._policies import RoutingPolicy as RoutingPolicy
from ._policies import RoutingRequest as RoutingRequest
from ._policies import evaluate_policy as evaluate_policy

__all__ = [
    "DictRoutingPolicy",
    "PolicyCallable",
    "PolicyLike",
    "RoutingDecisionType",
    "RoutingPolicy",
    "RoutingRequest",
    "evaluate_policy",
]

from ._public import publish

publish(__name__, globals(), __all__)
