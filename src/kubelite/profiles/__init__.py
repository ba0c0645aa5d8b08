"""How kubelite's entry points (up, init, join, agent, server, …) are put together from its components."""
