"""Infrastructure shared by every layer: settings, logging, metrics, the per-loop HTTP session."""
