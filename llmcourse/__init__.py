"""llmcourse: the package behind an interactive course on large language models.

Subpackages are imported on demand (``from llmcourse.models import DecoderLM``) so that
``import llmcourse`` stays fast; see ``DESIGN.md`` in the course repository for the map.
"""

from llmcourse.source import show

__version__ = "0.1.0"
__all__ = ["__version__", "show"]
