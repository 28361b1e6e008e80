// SPDX-License-Identifier: GPL-2.0
/*
 * rig_kmod - reference guest module of the rig.
 *
 * It binds QEMU's ivshmem device (plain or doorbell), writes a struct
 * rig_shm_header at the start of its shared memory (BAR2) for the host to
 * check, offers /dev/rig_shm so guest programs can mmap() that memory, and
 * shows every classic way a kernel and a process share memory or exchange
 * data, one mechanism per file:
 *
 *   netlink.c     netlink hands out physical addresses; /dev/rig_mem
 *   mmap_dev.c    mmap of kmalloc'd and vmalloc'd buffers, old and new way
 *   fault_dev.c   pages handed out by a .fault handler
 *   sockopt.c     get/setsockopt through nf_register_sockopt()
 *   procfs.c      /proc/rig_kmod with seq_file, showing core.c's state
 *   chardev_rw.c  read/write with copy_{to,from}_user
 *   ioctl.c       _IOR/_IOW/_IOWR ioctls
 *   kfile.c       file I/O from the kernel
 *   reserved.c    memory reserved at boot (memmap=)
 *   pool.c        buffer pool in ivshmem, kernel producer, poll
 *   doorbell.c    ivshmem-doorbell interrupts: the host as producer
 *
 * and the plumbing they share:
 *
 *   ivshmem_pci.c the PCI driver; owns the device, hands it to the parts
 *   shm_dev.c     /dev/rig_shm
 *   barmap.c      mappings of BAR2 that unbind revokes
 *   core.c        counters, the region list, the stats lines
 *
 * This file orders the parts; each part owns its module parameters.
 * Every char device exists from load to unload; the ones that need the
 * ivshmem device report -ENODEV until the PCI driver binds one.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

#include "rig_kmod.h"

/* The parts, set up in this order and torn down in reverse. */
static const struct rig_part {
	const char *name;
	int (*init)(void);
	void (*exit)(void);
} rig_parts[] = {
	/* First: kfile.c adds its file to the directory. */
	{ "procfs",	rig_procfs_init,	rig_procfs_exit },
	{ "shm_dev",	rig_shm_dev_create,	rig_shm_dev_destroy },
	{ "netlink",	rig_netlink_init,	rig_netlink_exit },
	{ "mmap_dev",	rig_mmap_dev_init,	rig_mmap_dev_exit },
	{ "fault_dev",	rig_fault_dev_init,	rig_fault_dev_exit },
	{ "sockopt",	rig_sockopt_init,	rig_sockopt_exit },
	{ "chardev_rw",	rig_rw_dev_init,	rig_rw_dev_exit },
	{ "ioctl",	rig_ioctl_dev_init,	rig_ioctl_dev_exit },
	{ "kfile",	rig_kfile_init,		rig_kfile_exit },
	{ "reserved",	rig_reserved_init,	rig_reserved_exit },
	{ "pool",	rig_pool_init,		rig_pool_exit },
	{ "doorbell",	rig_doorbell_init,	rig_doorbell_exit },
	/* Last: a probe finds every part ready to attach to. */
	{ "pci",	rig_pci_register,	rig_pci_unregister },
};

static void rig_parts_exit(size_t count)
{
	while (count--)
		rig_parts[count].exit();
}

static int __init rig_init(void)
{
	size_t i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(rig_parts); i++) {
		ret = rig_parts[i].init();
		if (ret) {
			pr_err("setting up %s failed: %d\n", rig_parts[i].name,
			       ret);
			rig_parts_exit(i);
			return ret;
		}
	}

	return 0;
}

static void __exit rig_exit(void)
{
	rig_parts_exit(ARRAY_SIZE(rig_parts));
}

module_init(rig_init);
module_exit(rig_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rig reference module: ivshmem shared memory and the classic kernel/user mechanisms");
MODULE_AUTHOR("rig developers");
