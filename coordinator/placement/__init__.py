"""VM placement: filters and weighers over an immutable host table (Nova-style).

Flow: :mod:`.hosts_build` turns the fleet snapshot, the stored inventory, the static
inventory file, current allocations and active claims into a :class:`.hosts.HostTable`
(numpy columns, one row per host). :mod:`.engine` runs every enabled filter as a boolean
mask over all rows, scores the survivors with every enabled weigher (one or more catalog
factors each, normalised 0..1 across the candidates, times a weight) and ranks them. The
engine is a pure function of (table, request, weights), so ``SelectHosts``, ``simulate``,
evacuation and consolidation share one code path.
"""
