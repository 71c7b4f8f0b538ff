"""Fleet optimisation: capacity forecasts, right-sizing and consolidation, as recommendations."""
