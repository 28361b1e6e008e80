// SPDX-License-Identifier: GPL-2.0
/*
 * 3. Fault-driven mapping.
 *
 * mmap() of /dev/rig_fault maps nothing; each first touch of a page
 * faults, and the .fault handler hands out one of two pages, holding
 * RIG_FAULT_STR0 and RIG_FAULT_STR1. The 2.6 article did this with
 * .nopage; see compat.h for the change. Touching beyond the two pages
 * gets VM_FAULT_SIGBUS: the process dies of SIGBUS, the kernel does not
 * warn.
 *
 * The pages come from alloc_page(), not kmalloc(): the fault path takes
 * a reference with get_page(), which on 7.2 warns and does nothing for
 * slab and large-kmalloc memory.
 */
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static struct page *rig_fault_pages[RIG_FAULT_PAGES];

static struct rig_region rig_fault_region = {
	.name = "fault",
	.kind = "pages",
	.size = RIG_FAULT_PAGES * PAGE_SIZE,
};

/* The page for offset pgoff of the device, or NULL for SIGBUS. */
static struct page *rig_fault_page(struct vm_area_struct *vma,
				   unsigned long pgoff)
{
	if (pgoff >= RIG_FAULT_PAGES) {
		rig_count(sigbus);
		return NULL;
	}

	rig_count(faults);
	return rig_fault_pages[pgoff];
}

RIG_DEFINE_FAULT(rig_fault)

static const struct vm_operations_struct rig_fault_vm_ops = {
	RIG_VM_OPS_FAULT(rig_fault),
};

static int rig_fault_mmap(struct file *file, struct vm_area_struct *vma)
{
	/* Any length: what lies beyond the pages is the SIGBUS test. */
	rig_count(mmaps);
	rig_vm_flags_set(vma, RIG_VM_RESERVED);
	vma->vm_ops = &rig_fault_vm_ops;
	return 0;
}

static long rig_fault_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	if (cmd != RIG_IOC_REGION_INFO)
		return -ENOTTY;
	return rig_region_info_reply(arg, 0, RIG_FAULT_PAGES * PAGE_SIZE,
				     RIG_REGION_FAULT);
}

RIG_DEFINE_IOCTL(rig_fault)

static const struct file_operations rig_fault_fops = {
	.owner	= THIS_MODULE,
	.mmap	= rig_fault_mmap,
	RIG_FOPS_IOCTL(rig_fault),
};

static struct miscdevice rig_fault_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_FAULT_DEV_NAME,
	.fops	= &rig_fault_fops,
	.mode	= 0600,
};

static void rig_fault_free_pages(void)
{
	int i;

	for (i = 0; i < RIG_FAULT_PAGES; i++) {
		if (rig_fault_pages[i])
			__free_page(rig_fault_pages[i]);
		rig_fault_pages[i] = NULL;
	}
}

int rig_fault_dev_init(void)
{
	static const char * const text[RIG_FAULT_PAGES] = {
		RIG_FAULT_STR0, RIG_FAULT_STR1,
	};
	int ret;
	int i;

	for (i = 0; i < RIG_FAULT_PAGES; i++) {
		rig_fault_pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!rig_fault_pages[i]) {
			ret = -ENOMEM;
			goto err_free_pages;
		}
		strscpy(page_address(rig_fault_pages[i]), text[i], PAGE_SIZE);
	}

	ret = misc_register(&rig_fault_dev);
	if (ret)
		goto err_free_pages;

	rig_region_add(&rig_fault_region);
	return 0;

err_free_pages:
	rig_fault_free_pages();
	return ret;
}

/* Only runs when no mapping is left: each holds the file, which pins us. */
void rig_fault_dev_exit(void)
{
	rig_region_del(&rig_fault_region);
	misc_deregister(&rig_fault_dev);
	rig_fault_free_pages();
}
