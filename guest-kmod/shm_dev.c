// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/rig_shm, the userspace view of the ivshmem BAR2.
 *
 * The node lives from module load to unload; the PCI driver attaches the
 * bound device to it and detaches it again on remove. Until then, and
 * after, every operation fails with -ENODEV.
 *
 * mmap() maps BAR2 itself (its bus address, not the kernel's mapping)
 * shared into the caller, page by page as it is touched; detaching
 * revokes those mappings (barmap.c). RIG_IOC_SHM_INFO says where BAR2 is
 * and how big.
 */
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static dev_t rig_shm_devt;
static struct cdev rig_shm_cdev;
static struct class *rig_shm_class;
static struct device *rig_shm_device;

/* BAR2 of the bound device, revoked on detach. */
static struct rig_barmap rig_shm_map;

static int rig_shm_open(struct inode *inode, struct file *file)
{
	resource_size_t size;
	phys_addr_t phys;

	if (!rig_barmap_window(&rig_shm_map, &phys, &size))
		return -ENODEV;
	rig_barmap_open(&rig_shm_map, file);
	return 0;
}

static int rig_shm_mmap(struct file *file, struct vm_area_struct *vma)
{
	return rig_barmap_mmap(&rig_shm_map, vma);
}

static long rig_shm_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct rig_shm_info info = { .abi_version = RIG_ABI_VERSION };
	resource_size_t size;
	phys_addr_t phys;

	if (cmd != RIG_IOC_SHM_INFO)
		return -ENOTTY;

	if (!rig_barmap_window(&rig_shm_map, &phys, &size))
		return -ENODEV;
	info.phys_addr = phys;
	info.size = size;

	if (copy_to_user((void __user *)arg, &info, sizeof(info)))
		return -EFAULT;

	return 0;
}

RIG_DEFINE_IOCTL(rig_shm)

/* .owner pins the module while a file (or a mapping of it) is open. */
static const struct file_operations rig_shm_fops = {
	.owner		= THIS_MODULE,
	.open		= rig_shm_open,
	.mmap		= rig_shm_mmap,
	RIG_FOPS_IOCTL(rig_shm),
};

/* Root only, set here rather than by a udev rule or mknod. */
static char *rig_shm_devnode(RIG_DEVNODE_CONST struct device *dev,
			     umode_t *mode)
{
	if (mode)
		*mode = 0600;

	return NULL;
}

void rig_shm_dev_attach(struct rig_dev *rdev)
{
	rig_barmap_attach(&rig_shm_map, rdev->shm_phys, rdev->shm_size, 0);
}

void rig_shm_dev_detach(struct rig_dev *rdev)
{
	rig_barmap_detach(&rig_shm_map);
}

int rig_shm_dev_create(void)
{
	int ret;

	ret = rig_barmap_init(&rig_shm_map);
	if (ret)
		return ret;

	ret = alloc_chrdev_region(&rig_shm_devt, 0, 1, RIG_SHM_DEV_NAME);
	if (ret)
		goto err_barmap_exit;

	cdev_init(&rig_shm_cdev, &rig_shm_fops);
	rig_shm_cdev.owner = THIS_MODULE;
	ret = cdev_add(&rig_shm_cdev, rig_shm_devt, 1);
	if (ret)
		goto err_unregister_region;

	rig_shm_class = rig_class_create(RIG_SHM_DEV_NAME);
	if (IS_ERR(rig_shm_class)) {
		ret = PTR_ERR(rig_shm_class);
		goto err_del_cdev;
	}
	rig_shm_class->devnode = rig_shm_devnode;

	rig_shm_device = device_create(rig_shm_class, NULL, rig_shm_devt, NULL,
				       RIG_SHM_DEV_NAME);
	if (IS_ERR(rig_shm_device)) {
		ret = PTR_ERR(rig_shm_device);
		goto err_destroy_class;
	}

	return 0;

err_destroy_class:
	class_destroy(rig_shm_class);
err_del_cdev:
	cdev_del(&rig_shm_cdev);
err_unregister_region:
	unregister_chrdev_region(rig_shm_devt, 1);
err_barmap_exit:
	rig_barmap_exit(&rig_shm_map);
	return ret;
}

void rig_shm_dev_destroy(void)
{
	device_destroy(rig_shm_class, rig_shm_devt);
	class_destroy(rig_shm_class);
	cdev_del(&rig_shm_cdev);
	unregister_chrdev_region(rig_shm_devt, 1);
	rig_barmap_exit(&rig_shm_map);
}
