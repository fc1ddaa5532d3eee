"""MongoDB access: the Store protocol (``store``), its PyMongo async implementation (``mongo``) and
the embedded local server (``embedded``, launched through ``server_main``).

Import from the submodules (``from simulator.db.mongo import connect_store``); this package imports
nothing heavy so that ``import simulator.db`` stays cheap.
"""
