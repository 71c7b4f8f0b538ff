"""The wire contract between agent, coordinator and the NovaCron scheduler.

Holds the ``.proto`` files, their generated code (committed; ``make proto`` regenerates,
a test diffs) and, in :mod:`novacron.protos.runtime`, the process conventions both
programs share (log format, config-file validation). It imports nothing else of ours.
"""

__version__ = "0.1.0"
