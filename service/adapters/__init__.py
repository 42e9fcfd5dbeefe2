"""Adapters: the domain's ports over AWS (aioboto3) and the ``locks`` library."""
