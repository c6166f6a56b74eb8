"""Flow patterns: concurrent mapping, joins and routers."""

from ._patterns import join_k, map_concurrent, predicate_router, union_router

__all__ = ["join_k", "map_concurrent", "predicate_router", "union_router"]

from ._public import publish

publish(__name__, globals(), __all__)
