"""The function engine (users' Python functions, ``Op.FUNCTION``) and the calling rules
it shares with the inline path and the simulator."""

from primflow.engines.function.call import FunctionCallError, call_sync
from primflow.engines.function.engine import FunctionEngine

__all__ = ["FunctionCallError", "FunctionEngine", "call_sync"]
