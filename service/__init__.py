"""pushgate service: serializes ECR ``PutImage`` per repo:tag with DynamoDB leases.

The package root stays import-light on purpose: ``service.client`` and the CLI's client
commands must not pull in FastAPI or aioboto3. The app lives in :mod:`service.main`.
"""

__all__: list[str] = []
