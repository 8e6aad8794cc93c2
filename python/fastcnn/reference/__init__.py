"""fastcnn.reference: the pure-numpy oracle (``functional``) and layer classes (``layers``).

Importing it never imports the compiled ``fastcnn._core``; it is the specification the fast
backend is tested against, not a fast path.
"""

from . import functional, layers

__all__ = ["functional", "layers"]
