"""Services: what the TUI and the CLI call (experiments, conversations, identity). Ownership checks
live here so both front ends share them; services return domain objects."""
