"""Finding local pods for the dev tools: `NS/POD` to its namespace, IP and name; services too.

The local kubelet names a pod's network namespace `<cluster id>-<pod uid>`, so the API server
is the only lookup needed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import aiohttp

from weir_local.probe import Target


class PodLookupError(Exception):
    """A pod or service that cannot be used as asked; the message says why."""


@dataclass(frozen=True)
class LocalPod:
    namespace: str
    name: str
    uid: str
    ip: str
    node: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def split_ref(ref: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise PodLookupError(f"{ref!r} is not NAMESPACE/POD")
    return namespace, name


class Cluster:
    """Read-only API lookups for the dev tools (plain HTTP to the local API server)."""

    def __init__(self, http: aiohttp.ClientSession, api_url: str, cluster_id: str) -> None:
        self.http = http
        self.api_url = api_url
        self.cluster_id = cluster_id

    async def _get(self, path: str) -> dict[str, Any]:
        async with self.http.get(self.api_url + path) as r:
            body: dict[str, Any] = await r.json()
            if r.status == 404:
                raise PodLookupError(body.get("message", f"{path} not found"))
            if r.status != 200:
                raise PodLookupError(f"API server answered {r.status}: {body.get('message')}")
            return body

    async def pod(self, ref: str) -> LocalPod:
        namespace, name = split_ref(ref)
        obj = await self._get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        status = obj.get("status") or {}
        ip = status.get("podIP") or ""
        if not ip:
            raise PodLookupError(f"pod {ref} has no IP yet (phase {status.get('phase')})")
        return LocalPod(
            namespace,
            name,
            obj["metadata"]["uid"],
            ip,
            (obj.get("spec") or {}).get("nodeName") or "",
        )

    def netns(self, pod: LocalPod) -> str:
        return f"{self.cluster_id}-{pod.uid}"

    async def target(self, ref: str) -> Target:
        """NS/POD, svc:NS/NAME (any of its ready endpoints may answer), or an IP."""
        if ref.startswith("svc:"):
            namespace, name = split_ref(ref[4:])
            svc = await self._get(f"/api/v1/namespaces/{namespace}/services/{name}")
            cluster_ip = (svc.get("spec") or {}).get("clusterIP") or ""
            if not cluster_ip or cluster_ip == "None":
                raise PodLookupError(f"service {namespace}/{name} has no cluster IP")
            slices = await self._get(
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
                f"?labelSelector=kubernetes.io/service-name%3D{name}"
            )
            names = {
                ep["targetRef"]["name"]
                for s in slices.get("items", [])
                for ep in s.get("endpoints") or []
                if (ep.get("targetRef") or {}).get("kind") == "Pod"
            }
            return Target(cluster_ip, frozenset(names))
        try:
            return Target(str(ipaddress.ip_address(ref)))
        except ValueError:
            pod = await self.pod(ref)
            return Target(pod.ip, frozenset({pod.name}))
