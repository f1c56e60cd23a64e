"""Where utilisation comes from: Prometheus in production, the simulator's telemetry in the demo, CSV imports."""
