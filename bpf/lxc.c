/* lxc.c — the programs on a pod's host-side veth, in the node's network namespace.
 *
 * node-loader compiles this file once at start (BCC) and attaches its two programs to every pod
 * veth with tc (clsact, direct-action; filter prio 1, handle 1). The entry points only dispatch:
 * what they do lives in bpf/lib, one header per concern. For now they count packets and bytes
 * per endpoint and direction and let every packet through: the node's network namespace routes
 * it (forwarding and policy come later).
 */
#include "lib/common.h"
#include "lib/endpoints.h"
#include "lib/accounting.h"

/* Hook: tc ingress of the host-side veth. Direction: packets leaving the pod. */
int weir_from_pod(struct __sk_buff *skb)
{
	struct endpoint_info *ep = lookup_endpoint(skb->ifindex);

	if (ep)
		account(skb, WEIR_DIR_FROM_POD);
	return TC_ACT_OK;
}

/* Hook: tc egress of the host-side veth. Direction: packets entering the pod. */
int weir_to_pod(struct __sk_buff *skb)
{
	struct endpoint_info *ep = lookup_endpoint(skb->ifindex);

	if (ep)
		account(skb, WEIR_DIR_TO_POD);
	return TC_ACT_OK;
}
