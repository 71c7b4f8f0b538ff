"""The wire contract between agent, coordinator and the NovaCron scheduler.

Holds the ``.proto`` files, their generated code (committed; ``make proto`` regenerates,
a test diffs) and, in :mod:`novacron.protos.runtime`, the process conventions both
programs share (log format, config-file validation). It imports nothing else of ours.
"""

__version__ = "0.1.0"

# The contract these files define: the major version is the proto package (novacron.v1);
# the minor one is what peers send as ``contract_minor_version``. Bump the minor together
# with the "This file set is contract v1.N" line of common.proto (a test compares them).
CONTRACT_MAJOR_VERSION = 1
CONTRACT_MINOR_VERSION = 1
