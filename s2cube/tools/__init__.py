"""Tools: commands that look at results (figures, comparisons) rather than compute them.

Tools sit at the top of the import layering: they may import any part of s2cube, and nothing
in the core imports them.  The main CLI registers their commands explicitly
(``s2cube.tools.figures:figures`` is ``s2cube figures``).
"""
