// SPDX-License-Identifier: GPL-2.0
/*
 * 9. Memory reserved at boot.
 *
 * The guest boots with memmap=SIZE$START, which marks that range
 * reserved in the e820 map: the kernel never uses it, so it is nobody's
 * RAM. The module gets the range from its reserved_phys/reserved_size
 * parameters, makes sure it really is not System RAM, claims it in
 * /proc/iomem, maps it with memremap() and writes RIG_RESERVED_GREETING
 * at its start (reading it back: a range with no memory behind it fails
 * here). /dev/rig_reserved then exposes it like /dev/rig_kmalloc:
 * mmap() (each page inserted as it is touched), read() of the kernel's
 * view, RIG_IOC_REGION_INFO.
 *
 * Without parameters, or if any of that fails, the device still exists
 * and answers -ENODEV; /proc/rig_kmod/stats says why.
 */
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

/* memmap=SIZE$START on the kernel command line reserves this range. */
static unsigned long rig_reserved_phys;
module_param_named(reserved_phys, rig_reserved_phys, ulong, 0444);
MODULE_PARM_DESC(reserved_phys, "start of the memory reserved at boot with memmap=SIZE$START");

static unsigned long rig_reserved_size;
module_param_named(reserved_size, rig_reserved_size, ulong, 0444);
MODULE_PARM_DESC(reserved_size, "length of that memory; 0 (default) disables /dev/" RIG_RESERVED_DEV_NAME);

static void *rig_resv_mem;		/* NULL: disabled */
static const char *rig_resv_why = "disabled: reserved_size=0";

static struct rig_region rig_resv_region = {
	.name = "reserved",
	.kind = "memmap",
};

static ssize_t rig_resv_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	if (!rig_resv_mem)
		return -ENODEV;
	return simple_read_from_buffer(ubuf, count, ppos, rig_resv_mem,
				       rig_reserved_size);
}

/* Inserts the page of the range a mapping touched; SIGBUS past it. */
static vm_fault_t rig_resv_fault(struct vm_fault *vmf)
{
	if (vmf->pgoff >= rig_reserved_size >> PAGE_SHIFT)
		return VM_FAULT_SIGBUS;
	return vmf_insert_pfn(vmf->vma, vmf->address,
			      PHYS_PFN(rig_reserved_phys) + vmf->pgoff);
}

static const struct vm_operations_struct rig_resv_vm_ops = {
	.fault	= rig_resv_fault,
};

static int rig_resv_mmap(struct file *file, struct vm_area_struct *vma)
{
	unsigned long npages = rig_reserved_size >> PAGE_SHIFT;

	if (!rig_resv_mem)
		return -ENODEV;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff >= npages || vma_pages(vma) > npages - vma->vm_pgoff)
		return -EINVAL;

	/*
	 * Each page goes in at its first touch, write-back: vmf_insert_pfn()
	 * takes the type memremap() reserved for the range. Not
	 * remap_pfn_range(): on memory that is not RAM it reserves a type
	 * for the whole mapping, which x86 PAT cannot give back piece by
	 * piece, so unmapping part of it (munmap, mremap) logs "freeing
	 * invalid memtype" and leaves the reservation wrong (seen on 6.1).
	 */
	rig_vm_flags_set(vma, VM_IO | VM_PFNMAP | RIG_VM_RESERVED);
	vma->vm_ops = &rig_resv_vm_ops;
	rig_count(mmaps);
	return 0;
}

static long rig_resv_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	if (cmd != RIG_IOC_REGION_INFO)
		return -ENOTTY;
	if (!rig_resv_mem)
		return -ENODEV;
	return rig_region_info_reply(arg, rig_reserved_phys, rig_reserved_size,
				     RIG_REGION_RESERVED);
}

RIG_DEFINE_IOCTL(rig_resv)

static const struct file_operations rig_resv_fops = {
	.owner		= THIS_MODULE,
	.read		= rig_resv_read,
	.llseek		= default_llseek,
	.mmap		= rig_resv_mmap,
	RIG_FOPS_IOCTL(rig_resv),
};

static struct miscdevice rig_resv_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_RESERVED_DEV_NAME,
	.fops	= &rig_resv_fops,
	.mode	= 0600,
};

/* Maps the range; on failure says why in rig_resv_why. */
static void rig_resv_map(void)
{
	phys_addr_t phys = rig_reserved_phys;
	size_t size = rig_reserved_size;
	void *mem;

	if (!size)
		return;
	if (!PAGE_ALIGNED(phys) || !PAGE_ALIGNED(size) || phys + size < phys) {
		rig_resv_why = "disabled: range not page-aligned";
		return;
	}
	if (region_intersects(phys, size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE) != REGION_DISJOINT) {
		rig_resv_why = "disabled: range is System RAM (boot with memmap=SIZE$START)";
		return;
	}

	if (!request_mem_region(phys, size, KBUILD_MODNAME " reserved")) {
		rig_resv_why = "disabled: range busy in /proc/iomem";
		return;
	}

	mem = memremap(phys, size, MEMREMAP_WB);
	if (!mem) {
		rig_resv_why = "disabled: memremap failed";
		goto err_release;
	}

	strscpy(mem, RIG_RESERVED_GREETING, size);
	if (strcmp(mem, RIG_RESERVED_GREETING)) {
		rig_resv_why = "disabled: no memory behind the range";
		goto err_unmap;
	}

	rig_resv_mem = mem;
	rig_resv_why = "mapped";
	return;

err_unmap:
	memunmap(mem);
err_release:
	release_mem_region(phys, size);
}

/* Undoes rig_resv_map(). */
static void rig_resv_unmap(void)
{
	if (!rig_resv_mem)
		return;
	memunmap(rig_resv_mem);
	release_mem_region(rig_reserved_phys, rig_reserved_size);
	rig_resv_mem = NULL;
}

static void rig_resv_show(struct seq_file *m)
{
	seq_printf(m, "%-16s %s\n", "reserved", rig_resv_why);
}

static struct rig_stats_source rig_resv_stats = { .show = rig_resv_show };

int rig_reserved_init(void)
{
	int ret;

	/* A range that cannot be used is reported, not fatal. */
	rig_resv_map();

	ret = misc_register(&rig_resv_dev);
	if (ret) {
		rig_resv_unmap();
		return ret;
	}

	if (rig_resv_mem) {
		rig_resv_region.phys = rig_reserved_phys;
		rig_resv_region.size = rig_reserved_size;
		rig_region_add(&rig_resv_region);
	}
	rig_stats_add(&rig_resv_stats);
	return 0;
}

/* Undoes init in reverse; no mapping is left (each pins the module). */
void rig_reserved_exit(void)
{
	rig_stats_del(&rig_resv_stats);
	if (rig_resv_mem)
		rig_region_del(&rig_resv_region);
	misc_deregister(&rig_resv_dev);
	rig_resv_unmap();
}
