"""Model training (scikit-learn). Never imported by the agent.

Runs on the coordinator or a workstation: ``pip install novacron-aiops[coordinator]``.
"""
