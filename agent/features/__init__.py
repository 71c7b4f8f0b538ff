"""From collector readings to feature vectors: signals, windows, persistence.

:mod:`.signals` maps one :class:`~novacron.agent.sample.NodeSample` onto the scalar
signals of the feature schemas (``novacron.models.schema``: NODE, VM, DISK);
:mod:`.store` keeps one :class:`~novacron.models.windows.FeatureWindows` per node, VM
and disk, turns them into the matrices the models score, and saves/restores them so a
restarted agent is not blind for a day.
"""
