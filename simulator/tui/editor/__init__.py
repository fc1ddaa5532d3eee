"""The panes (tabs) of the experiment editor; each edits the shared ``Draft``."""
