"""HTTP API: routes validate, call the use case, map results and errors."""
