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

#endif /* WEIR_COMMON_H */
