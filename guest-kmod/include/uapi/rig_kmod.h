/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rig_kmod.h - the one ABI shared by the rig reference module, the guest
 * programs and the host rig (mirrored in abi/src/lib.rs; a test compiles
 * this header and compares every size, offset and number with the mirror).
 *
 * All structs use fixed-width types and explicit padding so that the layout
 * is the same for the C module, 64-bit userspace and the Rust mirror.
 */
#ifndef _UAPI_RIG_KMOD_H
#define _UAPI_RIG_KMOD_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define RIG_ABI_VERSION		1

/* ivshmem-plain: PCI vendor/device of the shared-memory device. */
#define RIG_IVSHMEM_VENDOR	0x1af4
#define RIG_IVSHMEM_DEVICE	0x1110

/* Name of the char device that maps ivshmem BAR2: /dev/RIG_SHM_DEV_NAME. */
#define RIG_SHM_DEV_NAME	"rig_shm"

/*
 * Layout of the ivshmem region (BAR2), as offsets from its start.
 * The header is written by the module at probe time; the host reads it.
 */
#define RIG_SHM_MAGIC		0x53474952	/* "RIGS" little-endian */
#define RIG_SHM_HEADER_OFFSET	0x0000
#define RIG_SHM_G2H_OFFSET	0x1000		/* guest writes, host checks */
#define RIG_SHM_H2G_OFFSET	0x11000		/* host writes, guest checks */
#define RIG_SHM_AREA_SIZE	0x10000		/* size of each pattern area */
#define RIG_SHM_FREE_OFFSET	0x21000		/* first byte for later users */
#define RIG_SHM_MIN_SIZE	0x100000	/* the module refuses smaller BARs */

/* Values of rig_shm_header.state. */
#define RIG_STATE_PROBED	1
#define RIG_STATE_REMOVED	2

struct rig_shm_header {
	__u32 magic;		/* RIG_SHM_MAGIC once the module has probed */
	__u32 abi_version;	/* RIG_ABI_VERSION */
	__u64 size;		/* BAR2 length as the guest sees it */
	__u32 state;		/* RIG_STATE_* */
	__u32 probe_count;	/* incremented at every probe */
	__u64 bar_phys;		/* BAR2 bus address in the guest */
	__u8 kernel_release[64];	/* utsname()->release, NUL-terminated */
};

/* Returned by RIG_IOC_SHM_INFO on /dev/rig_shm. */
struct rig_shm_info {
	__u64 phys_addr;	/* BAR2 bus address */
	__u64 size;		/* BAR2 length */
	__u32 abi_version;	/* RIG_ABI_VERSION */
	__u32 reserved;		/* zero */
};

#define RIG_IOC_MAGIC		'r'
#define RIG_IOC_SHM_INFO	_IOR(RIG_IOC_MAGIC, 0x01, struct rig_shm_info)


/*
 * ------------------------------------------------------------------------
 * The reference mechanisms (issue 3). Everything below was appended; the
 * definitions above are unchanged.
 * ------------------------------------------------------------------------
 */

/*
 * The byte pattern of the rig (rig_abi::pattern_byte): position-dependent,
 * seeded. Pool payloads use it; the host and guest programs check it.
 */
static inline __u8 rig_pattern_byte(__u32 seed, __u64 index)
{
	__u32 x = (__u32)index * 0x9E3779B1u ^ seed ^ (__u32)(index >> 32);

	return (__u8)(x ^ (x >> 15) ^ (x >> 24));
}

/* Char devices of the mechanisms, /dev/<name>; all mode 0600. */
#define RIG_MEM_DEV_NAME	"rig_mem"	/* 1: maps the netlink pages and BAR2 by physical address */
#define RIG_KMALLOC_DEV_NAME	"rig_kmalloc"	/* 2: kmalloc'd buffer, remap_pfn_range */
#define RIG_VMALLOC_DEV_NAME	"rig_vmalloc"	/* 2: vmalloc'd buffer, one pfn per page */
#define RIG_VMALLOC_USER_DEV_NAME "rig_vmalloc_user"	/* 2: vmalloc_user + remap_vmalloc_range */
#define RIG_FAULT_DEV_NAME	"rig_fault"	/* 3: pages handed out by .fault */
#define RIG_RW_DEV_NAME		"rig_rw"	/* 6: read/write */
#define RIG_IOCTL_DEV_NAME	"rig_ioctl"	/* 7: ioctl */
#define RIG_RESERVED_DEV_NAME	"rig_reserved"	/* 9: memory reserved at boot */
#define RIG_POOL_DEV_NAME	"rig_pool"	/* 10: buffer pool */
#define RIG_DB_DEV_NAME		"rig_doorbell"	/* 11: ivshmem doorbell */

/* /proc/RIG_PROC_DIR/{regions,stats,kfile} (5, 8). */
#define RIG_PROC_DIR		"rig_kmod"

/*
 * Layout of the ivshmem region (BAR2) from RIG_SHM_FREE_OFFSET on.
 *
 *   0x21000  struct rig_pool_status   the pool's state, written by the guest
 *   0x22000  struct rig_hring         host ring control (host and guest)
 *   0x23000  RIG_POOL_NBUF buffers of RIG_POOL_BUF_SIZE bytes:
 *            0 .. RIG_POOL_KBUFS-1    filled by the guest's kernel thread (10)
 *            RIG_HRING_FIRST_BUF ..   the host ring's slots (11)
 *   0x43000  RIG_SHM_NETLINK_OFFSET   the guest writes RIG_NL_GREETING here
 *                                     through /dev/rig_mem (1)
 *   0x44000  RIG_SHM_USED_END         end of what the module uses
 */
#define RIG_POOL_STATUS_OFFSET	0x21000
#define RIG_HRING_OFFSET	0x22000
#define RIG_POOL_OFFSET		0x23000
#define RIG_POOL_NBUF		32
#define RIG_POOL_BUF_SIZE	0x1000
#define RIG_POOL_KBUFS		16
#define RIG_HRING_FIRST_BUF	16
#define RIG_HRING_SLOTS		16
#define RIG_SHM_NETLINK_OFFSET	0x43000
#define RIG_SHM_USED_END	0x44000

/* ---- 1. netlink ---------------------------------------------------- */

/* Custom netlink protocol number (below MAX_LINKS, unused by mainline). */
#define RIG_NETLINK_PROTO	30
/* Request (empty payload) and answer (struct rig_nl_shared) types. */
#define RIG_NL_MSG_GET		0x10	/* NLMSG_MIN_TYPE */
#define RIG_NL_MSG_SHARED	0x11
/* __get_free_pages(order) pages, each marked reserved. */
#define RIG_NL_PAGES_ORDER	1
#define RIG_NL_PAGES_SIZE	0x2000
/* What the module writes at the start of those pages. */
#define RIG_NL_GREETING		"hello, use share memory with netlink"

/* Answer to RIG_NL_MSG_GET; callers without CAP_SYS_ADMIN get -EPERM. */
struct rig_nl_shared {
	__u64 pages_phys;	/* physical address of the pages */
	__u64 pages_size;	/* RIG_NL_PAGES_SIZE */
	__u64 shm_phys;		/* ivshmem BAR2 bus address (0: no device) */
	__u64 shm_size;		/* BAR2 length (0: no device) */
	__u32 abi_version;	/* RIG_ABI_VERSION */
	__u32 greeting_len;	/* strlen(RIG_NL_GREETING) */
};

/* ---- 2, 3, 9. mapped regions ---------------------------------------- */

#define RIG_KMALLOC_SIZE	0x4000	/* kmalloc (a compound page: not reserved) */
#define RIG_VMALLOC_SIZE	0x10000	/* vmalloc */
#define RIG_VMALLOC_USER_SIZE	0x4000	/* vmalloc_user */
#define RIG_FAULT_PAGES		2	/* pages behind /dev/rig_fault */
#define RIG_FAULT_STR0		"1234567890"	/* start of fault page 0 */
#define RIG_FAULT_STR1		"abcdefghij"	/* start of fault page 1 */
/* Written by the module at the start of the kmalloc/vmalloc buffers. */
#define RIG_KMALLOC_GREETING	"rig kmalloc buffer"
#define RIG_VMALLOC_GREETING	"rig vmalloc buffer"
#define RIG_VMALLOC_USER_GREETING "rig vmalloc_user buffer"

/* Written by the module at the start of the memory reserved at boot. */
#define RIG_RESERVED_GREETING	"rig reserved memory"

/* Values of rig_region_info.kind. */
#define RIG_REGION_KMALLOC	1
#define RIG_REGION_VMALLOC	2
#define RIG_REGION_FAULT	3
#define RIG_REGION_RESERVED	4
#define RIG_REGION_VMALLOC_USER	5

/*
 * RIG_IOC_REGION_INFO on rig_kmalloc, rig_vmalloc, rig_vmalloc_user,
 * rig_fault, rig_reserved.
 */
struct rig_region_info {
	__u64 phys;		/* physical start; 0 when not contiguous */
	__u64 size;		/* bytes mmap() may cover */
	__u32 kind;		/* RIG_REGION_* */
	__u32 reserved;		/* zero */
};

/* ---- 4. get/setsockopt (nf_register_sockopt, level SOL_IP) ---------- */

#define RIG_SO_BASE		0x5200
#define RIG_SO_MSG		(RIG_SO_BASE + 0)	/* set and get */
#define RIG_SO_STATS		(RIG_SO_BASE + 1)	/* get */
#define RIG_SO_MAX		(RIG_SO_BASE + 4)	/* range end, exclusive */
#define RIG_SO_MSG_MAX		56

/* RIG_SO_MSG: optlen must be sizeof(struct rig_so_msg) exactly. */
struct rig_so_msg {
	__u32 len;		/* bytes used in data, <= RIG_SO_MSG_MAX */
	__u32 seq;		/* get: number of sets so far */
	__u8 data[RIG_SO_MSG_MAX];
};

struct rig_so_stats {
	__u64 sets;
	__u64 gets;
};

/* ---- 6. read/write -------------------------------------------------- */

#define RIG_RW_BUF_SIZE		4096	/* the device's bounded buffer */

/* ---- 7. ioctl ------------------------------------------------------- */

#define RIG_CONFIG_NAME_LEN	32
#define RIG_CONFIG_F_VERBOSE	0x1
#define RIG_CONFIG_F_FAST	0x2
#define RIG_CONFIG_F_ALL	0x3
#define RIG_CONFIG_LEVEL_MAX	7

struct rig_config {
	__u32 flags;		/* RIG_CONFIG_F_* */
	__u32 level;		/* 0 .. RIG_CONFIG_LEVEL_MAX */
	__u64 cookie;		/* any value */
	__u8 name[RIG_CONFIG_NAME_LEN];	/* NUL-terminated */
};

/* ---- 8. file I/O from the kernel ------------------------------------ */

#define RIG_KFILE_DEFAULT_PATH	"/tmp/rig_kfile"
/* First line the module writes into the file at load time. */
#define RIG_KFILE_GREETING	"written by rig_kmod with kernel_write"

/* ---- 10. buffer pool ------------------------------------------------ */

#define RIG_POOL_MAGIC		0x50474952	/* "RIGP" */
#define RIG_POOL_BUF_MAGIC	0x42474952	/* "RIGB" */
/* rig_pool_status.state */
#define RIG_POOL_READY		1
#define RIG_POOL_GONE		2
/* rig_pool_buf.source */
#define RIG_POOL_SRC_KERNEL	1
#define RIG_POOL_SRC_HOST	2

/* Start of every buffer; the payload follows it. */
struct rig_pool_buf {
	__u32 magic;		/* RIG_POOL_BUF_MAGIC */
	__u32 source;		/* RIG_POOL_SRC_* */
	__u64 seq;		/* 1, 2, ... per producer */
	__u32 len;		/* payload bytes, <= RIG_POOL_PAYLOAD_MAX */
	__u32 seed;		/* payload[i] == rig_pattern_byte(seed, i) */
	__u32 index;		/* this buffer's index in the pool */
	__u32 reserved[9];	/* zero */
};

#define RIG_POOL_HDR_SIZE	64	/* sizeof(struct rig_pool_buf) */
#define RIG_POOL_PAYLOAD_MAX	(RIG_POOL_BUF_SIZE - RIG_POOL_HDR_SIZE)

/* At RIG_POOL_STATUS_OFFSET; written by the guest only, for the host. */
struct rig_pool_status {
	__u32 magic;		/* RIG_POOL_MAGIC */
	__u32 state;		/* RIG_POOL_READY / RIG_POOL_GONE */
	__u32 nbuf;		/* RIG_POOL_NBUF */
	__u32 kbufs;		/* RIG_POOL_KBUFS */
	__u64 produced;		/* buffers the kernel thread filled */
	__u64 consumed;		/* kernel buffers taken and released */
	__u64 host_consumed;	/* host buffers taken and released */
	__u32 free;		/* kernel buffers free now */
	__u32 ready;		/* buffers queued for userspace now */
	__u64 last_seq;		/* seq of the last kernel buffer filled */
};

/*
 * ---- 11. the host as producer (ivshmem-doorbell) ----------------------
 *
 * struct rig_hring sits at RIG_HRING_OFFSET. Each field has one writer:
 * the first 64 bytes the host, the next 64 the guest's module. Indices are
 * free-running __u32 counts (they wrap; compare with u32 subtraction).
 * Position p (0, 1, 2, ...) of the ring is pool buffer
 * RIG_HRING_FIRST_BUF + p % RIG_HRING_SLOTS, and the buffer the host puts
 * there has seq p + 1.
 *
 * The host produces N buffers like this:
 *  1. Wait until guest_state == RIG_HRING_READY (load-acquire). The module
 *     sets it after probe, with cons == prod as it found prod: whatever
 *     the host produced before was dropped. guest_peer is the guest's
 *     ivshmem peer id (its IVPosition register).
 *  2. Store its own peer id in host_peer and RIG_HRING_HOST_MAGIC in
 *     host_magic, so the guest knows whom to ring back.
 *  3. For p = prod .. prod + N - 1 (prod: the host's own copy, it is the
 *     only writer): wait until p - cons < RIG_HRING_SLOTS (cons read with
 *     load-acquire; the guest advances it when userspace releases
 *     buffers, in ring order). Then into buffer
 *     b = RIG_HRING_FIRST_BUF + p % RIG_HRING_SLOTS, at
 *     RIG_POOL_OFFSET + b * RIG_POOL_BUF_SIZE, write the payload at
 *     +RIG_POOL_HDR_SIZE (len bytes, rig_pattern_byte(seed, i)) and the
 *     struct rig_pool_buf { RIG_POOL_BUF_MAGIC, RIG_POOL_SRC_HOST,
 *     seq = p + 1, len, seed, index = b, zeros }.
 *  4. Publish: store prod + N into prod with store-release (every buffer
 *     write above must be visible before the new prod; on x86-64 a plain
 *     store after them is enough, but say Release). prod may also be
 *     published after each buffer.
 *  5. Ring the guest: peer guest_peer, vector RIG_DB_VEC_PRODUCED (write
 *     1 to that peer's eventfd for vector 0).
 * The guest's interrupt wakes poll()/RIG_IOC_POOL_TAKE_WAIT on
 * /dev/rig_pool; the module reads prod with load-acquire, checks each new
 * header and queues the buffers for userspace after any kernel-produced
 * ones already queued. When userspace has released them (in any order)
 * the module advances cons with store-release; the guest program then
 * rings host_peer on vector RIG_DB_VEC_CONSUMED.
 */
#define RIG_HRING_MAGIC		0x48474952	/* "RIGH": guest_magic */
#define RIG_HRING_HOST_MAGIC	0x54534f48	/* "HOST": host_magic */
/* rig_hring.guest_state */
#define RIG_HRING_READY		1
#define RIG_HRING_GONE		2
/* rig_hring.guest_peer when the device has no doorbell (ivshmem-plain). */
#define RIG_PEER_NONE		0xffffffff

/* Doorbell vectors and what they mean. */
#define RIG_DB_VEC_PRODUCED	0	/* host -> guest: prod advanced */
#define RIG_DB_VEC_CONSUMED	1	/* guest -> host: cons advanced */
#define RIG_DB_MAX_VECTORS	8	/* the module uses at most this many */

struct rig_hring {
	/* Written by the host. */
	__u32 prod;		/* buffers produced, free-running */
	__u32 host_peer;	/* the host's peer id */
	__u32 host_magic;	/* RIG_HRING_HOST_MAGIC once host_peer is set */
	__u32 host_reserved[13];
	/* Written by the guest. */
	__u32 cons;		/* buffers released, free-running */
	__u32 guest_peer;	/* IVPosition, or RIG_PEER_NONE */
	__u32 guest_state;	/* RIG_HRING_READY / RIG_HRING_GONE */
	__u32 guest_magic;	/* RIG_HRING_MAGIC */
	__u32 nslots;		/* RIG_HRING_SLOTS */
	__u32 first_buf;	/* RIG_HRING_FIRST_BUF */
	__u32 irqs;		/* interrupts on RIG_DB_VEC_PRODUCED */
	__u32 bad;		/* host entries refused (bad header, overrun) */
	__u32 guest_reserved[8];
};

/* RIG_IOC_POOL_INFO */
struct rig_pool_info {
	__u32 nbuf;		/* RIG_POOL_NBUF */
	__u32 buf_size;		/* RIG_POOL_BUF_SIZE */
	__u32 kbufs;		/* RIG_POOL_KBUFS */
	__u32 free;		/* kernel buffers free */
	__u32 ready;		/* buffers queued for userspace */
	__u32 taken;		/* buffers userspace holds */
	__u64 produced;		/* kernel buffers filled so far */
	__u64 consumed;		/* kernel buffers released so far */
	__u64 host_queued;	/* host buffers queued so far */
	__u64 host_consumed;	/* host buffers released so far */
	__u32 pending;		/* kernel buffers still to produce */
	__u32 reserved;		/* zero */
};

/* RIG_IOC_POOL_START: produce count buffers (seq continues). */
struct rig_pool_start {
	__u32 count;		/* buffers to produce, >= 1 */
	__u32 len;		/* payload bytes, 1 .. RIG_POOL_PAYLOAD_MAX */
	__u32 seed;		/* the buffer with seq s gets seed + s */
	__u32 interval_us;	/* pause after each buffer, <= 1000000 */
};

/* RIG_IOC_POOL_TAKE(_WAIT): a buffer now owned by the caller. */
struct rig_pool_desc {
	__u32 index;		/* pool buffer index */
	__u32 source;		/* RIG_POOL_SRC_* */
	__u64 seq;		/* as in the buffer's header */
	__u32 len;		/* payload bytes */
	__u32 seed;		/* payload seed */
};

/* RIG_IOC_POOL_RELEASE */
struct rig_pool_release {
	__u32 index;		/* a buffer this file took */
	__u32 reserved;		/* zero */
};

/* RIG_IOC_DB_INFO */
struct rig_db_info {
	__u32 doorbell;		/* 1: ivshmem-doorbell with MSI-X, 0: plain */
	__u32 own_peer;		/* IVPosition, or RIG_PEER_NONE */
	__u32 vectors;		/* MSI-X vectors requested */
	__u32 host_peer;	/* module parameter, else rig_hring.host_peer, else RIG_PEER_NONE */
	__u64 irqs[RIG_DB_MAX_VECTORS];	/* interrupts per vector */
	__u64 rings;		/* doorbell writes by this guest */
};

/* RIG_IOC_DB_RING: write (peer << 16) | vector to the Doorbell register. */
struct rig_db_ring {
	__u32 peer;		/* 0 .. 0xffff */
	__u32 vector;		/* 0 .. 0xffff */
};

/* RIG_IOC_DB_WAIT: sleep until irqs[vector] != count or timeout. */
struct rig_db_wait {
	__u32 vector;		/* < vectors */
	__u32 timeout_ms;	/* 0: do not sleep */
	__u64 count;		/* in: last count seen; out: count now */
};

/* ioctl numbers; RIG_IOC_MAGIC as above. */
#define RIG_IOC_GET_CONFIG	_IOR(RIG_IOC_MAGIC, 0x10, struct rig_config)
#define RIG_IOC_SET_CONFIG	_IOW(RIG_IOC_MAGIC, 0x11, struct rig_config)
#define RIG_IOC_XCHG_CONFIG	_IOWR(RIG_IOC_MAGIC, 0x12, struct rig_config)
#define RIG_IOC_RESET_CONFIG	_IO(RIG_IOC_MAGIC, 0x13)
#define RIG_IOC_CONFIG_MAXNR	0x13

#define RIG_IOC_REGION_INFO	_IOR(RIG_IOC_MAGIC, 0x20, struct rig_region_info)

#define RIG_IOC_POOL_INFO	_IOR(RIG_IOC_MAGIC, 0x30, struct rig_pool_info)
#define RIG_IOC_POOL_START	_IOW(RIG_IOC_MAGIC, 0x31, struct rig_pool_start)
#define RIG_IOC_POOL_TAKE	_IOR(RIG_IOC_MAGIC, 0x32, struct rig_pool_desc)
#define RIG_IOC_POOL_TAKE_WAIT	_IOR(RIG_IOC_MAGIC, 0x33, struct rig_pool_desc)
#define RIG_IOC_POOL_RELEASE	_IOW(RIG_IOC_MAGIC, 0x34, struct rig_pool_release)

#define RIG_IOC_DB_INFO		_IOR(RIG_IOC_MAGIC, 0x40, struct rig_db_info)
#define RIG_IOC_DB_RING		_IOW(RIG_IOC_MAGIC, 0x41, struct rig_db_ring)
#define RIG_IOC_DB_WAIT		_IOWR(RIG_IOC_MAGIC, 0x42, struct rig_db_wait)

#endif /* _UAPI_RIG_KMOD_H */
