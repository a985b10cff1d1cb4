"""The local kubelet (`weir-local-kubelet`): one process per node runs that node's pods.

Pods are network namespaces wired by the node's CNI plugin, executed exactly as a container
runtime executes one; their "containers" are sockets answering every declared port with the
pod's name, all served by this one asyncio process. Pure decisions live in `core`, `node` and
`status`; the shell is `apiclient`, `informer`, `pods`, `registration`, `sandbox`, `cni`,
`netns`, `servers` and `network`; `main` composes them.
"""
