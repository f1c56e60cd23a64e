"""Reclaiming idle CPU and memory (资源回收整合): utilisation summaries, analysis, recommendations, workflow."""
