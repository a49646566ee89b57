"""The fit loop's helpers: callbacks, history, progress display."""

from .callbacks import Callback, CallbackList, History
from .progress import Progress, resolve_verbose

__all__ = ["Callback", "CallbackList", "History", "Progress", "resolve_verbose"]
