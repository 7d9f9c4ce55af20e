"""The TUI's screens: studies, one study, one trial, export, new study."""
