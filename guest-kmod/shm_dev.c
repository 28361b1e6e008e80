// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/rig_shm, the userspace view of the ivshmem BAR2.
 *
 * The node lives from module load to unload; the PCI driver attaches the
 * bound device to it and detaches it again on remove. Until then, and
 * after, every operation fails with -ENODEV.
 *
 * mmap() maps BAR2 itself (its bus address, not the kernel's mapping)
 * shared into the caller; RIG_IOC_SHM_INFO says where and how big it is.
 */
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static dev_t rig_shm_devt;
static struct cdev rig_shm_cdev;
static struct class *rig_shm_class;
static struct device *rig_shm_device;

/* Protects rig_shm_rdev against PCI remove while a file op uses it. */
static DEFINE_MUTEX(rig_shm_lock);
static struct rig_dev *rig_shm_rdev;

static int rig_shm_open(struct inode *inode, struct file *file)
{
	int ret = 0;

	mutex_lock(&rig_shm_lock);
	if (!rig_shm_rdev)
		ret = -ENODEV;
	mutex_unlock(&rig_shm_lock);

	return ret;
}

static int rig_shm_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long npages;
	int ret;

	/* A private mapping would copy on write and never reach the host. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;

	mutex_lock(&rig_shm_lock);
	if (!rig_shm_rdev) {
		ret = -ENODEV;
		goto out_unlock;
	}

	/* Counted in pages, so neither offset nor length can overflow. */
	npages = rig_shm_rdev->shm_size >> PAGE_SHIFT;
	if (vma->vm_pgoff >= npages ||
	    vma_pages(vma) > npages - vma->vm_pgoff) {
		ret = -EINVAL;
		goto out_unlock;
	}

	/*
	 * The page protection stays the default write-back one, the memory
	 * type the kernel mapped the BAR with (see ivshmem_pci.c); x86 PAT
	 * would refuse a conflicting one.
	 */
	rig_vm_flags_set(vma, VM_IO | RIG_VM_RESERVED);
	ret = io_remap_pfn_range(vma, vma->vm_start,
				 (rig_shm_rdev->shm_phys >> PAGE_SHIFT) +
				 vma->vm_pgoff,
				 vma->vm_end - vma->vm_start,
				 vma->vm_page_prot);

out_unlock:
	mutex_unlock(&rig_shm_lock);
	return ret;
}

static long rig_shm_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct rig_shm_info info = { .abi_version = RIG_ABI_VERSION };

	if (cmd != RIG_IOC_SHM_INFO)
		return -ENOTTY;

	mutex_lock(&rig_shm_lock);
	if (!rig_shm_rdev) {
		mutex_unlock(&rig_shm_lock);
		return -ENODEV;
	}
	info.phys_addr = rig_shm_rdev->shm_phys;
	info.size = rig_shm_rdev->shm_size;
	mutex_unlock(&rig_shm_lock);

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
	mutex_lock(&rig_shm_lock);
	WARN_ON(rig_shm_rdev);
	rig_shm_rdev = rdev;
	mutex_unlock(&rig_shm_lock);
}

void rig_shm_dev_detach(struct rig_dev *rdev)
{
	mutex_lock(&rig_shm_lock);
	WARN_ON(rig_shm_rdev != rdev);
	rig_shm_rdev = NULL;
	mutex_unlock(&rig_shm_lock);
}

int rig_shm_dev_create(void)
{
	int ret;

	ret = alloc_chrdev_region(&rig_shm_devt, 0, 1, RIG_SHM_DEV_NAME);
	if (ret)
		return ret;

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
	return ret;
}

void rig_shm_dev_destroy(void)
{
	device_destroy(rig_shm_class, rig_shm_devt);
	class_destroy(rig_shm_class);
	cdev_del(&rig_shm_cdev);
	unregister_chrdev_region(rig_shm_devt, 1);
}
