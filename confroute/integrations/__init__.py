"""confroute inside other gateways (each module imports its gateway only when used)."""
