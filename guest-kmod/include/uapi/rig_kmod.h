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

#endif /* _UAPI_RIG_KMOD_H */
