"""The TUI's widgets: the objective plot and the study's side panels."""
