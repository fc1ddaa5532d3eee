"""The experiment kinds: installed for the whole test session, as the program's entry point
(``simulator.cli.main``) installs them for its process."""

from __future__ import annotations

from simulator.scenarios.registry import install

install()
