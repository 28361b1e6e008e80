// SPDX-License-Identifier: GPL-2.0
/*
 * rig_kmod - reference guest module of the rig.
 *
 * It binds the ivshmem-plain PCI device, writes a struct rig_shm_header
 * at the start of its shared memory (BAR2) for the host to check, and
 * offers /dev/rig_shm so guest programs can mmap() that memory.
 *
 * This file only orders the parts: the char device exists from load to
 * unload and reports -ENODEV until the PCI driver attaches a device.
 */
#include <linux/init.h>
#include <linux/module.h>

#include "uapi/rig_kmod.h"

#include "rig_kmod.h"

static int __init rig_init(void)
{
	int ret;

	/* The char device first, so a probe always has it to attach to. */
	ret = rig_shm_dev_create();
	if (ret)
		return ret;

	ret = rig_pci_register();
	if (ret)
		goto err_destroy_shm_dev;

	return 0;

err_destroy_shm_dev:
	rig_shm_dev_destroy();
	return ret;
}

static void __exit rig_exit(void)
{
	rig_pci_unregister();
	rig_shm_dev_destroy();
}

module_init(rig_init);
module_exit(rig_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Rig reference module: ivshmem shared memory and /dev/" RIG_SHM_DEV_NAME);
MODULE_AUTHOR("rig developers");
