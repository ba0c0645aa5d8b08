"""Container runtimes the node agent plugs in (`Runtime`): the simulated one and runc."""
