"""The stand-in's HTTP face: routes per API, auth, TLS, the fault middleware."""
