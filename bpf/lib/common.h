/* common.h — included first by every Weir BPF program.
 *
 * Kernel UAPI types and tc verdicts, and a check of the settings node-loader passes as -D flags
 * (one typed config in Python, logged at load): a missing setting is a compile error here rather
 * than a silent default that user space would not know about.
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <linux/types.h>

/* Where the maps are pinned: "<bpf_root>/<node>", a string literal. */
#ifndef WEIR_PIN_DIR
#error "WEIR_PIN_DIR must be passed with -D (node-loader does)"
#endif

/* Map capacities, from node-loader's maps.py (the one place that sizes a map). */
#ifndef WEIR_MAX_ENDPOINTS
#error "WEIR_MAX_ENDPOINTS must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_EP_STATS
#error "WEIR_MAX_EP_STATS must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_IPCACHE
#error "WEIR_MAX_IPCACHE must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_IPCACHE_CIDR
#error "WEIR_MAX_IPCACHE_CIDR must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_POLICY
#error "WEIR_MAX_POLICY must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_CT
#error "WEIR_MAX_CT must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_MAX_FRAG
#error "WEIR_MAX_FRAG must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_REASON_SLOTS
#error "WEIR_REASON_SLOTS must be passed with -D (node-loader does)"
#endif
#ifndef WEIR_EVENTS_BYTES
#error "WEIR_EVENTS_BYTES must be passed with -D (node-loader does)"
#endif

#define WEIR_NSEC_PER_SEC 1000000000ULL

#endif /* WEIR_COMMON_H */
