"""A Kubernetes API client for Weir services, configured the way every Weir service agrees on.

Needs the `kube` extra of the weir package (kubernetes-asyncio); only the services that talk to
the Kubernetes API import this module.
"""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config


async def api_client(kubeconfig: str) -> client.ApiClient:
    """A client from the given kubeconfig, the in-cluster service account, or the default
    kubeconfig ($KUBECONFIG or ~/.kube/config), in that order."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=configuration, persist_config=False)
    return client.ApiClient(configuration)
