"""The registry front door: the push side of the OCI Distribution API (``/v2/``) over
ECR, so docker, buildx, skopeo, crane and oras push whole images through pushgate.

- ``protocol``: the spec's names, references, error codes and upload locations (pure);
- ``parts``: a request body cut into ECR layer parts, memory bounded by two parts;
- the routes are ``service.api.routes.registry``; ECR's layer API is
  ``service.adapters.layers``.

Blobs are content-addressed and go straight to ECR's layer upload API (no lease);
manifests by tag run the push use case under the tag's lease, so everything that holds
for ``POST /v1/pushes`` holds here. Design notes: ``docs/registry.md``.
"""
