// SPDX-License-Identifier: GPL-2.0
/*
 * 2. mmap over kmalloc'd and over vmalloc'd pages.
 *
 * /dev/rig_kmalloc maps a kmalloc()ed buffer: physically contiguous, so
 * one remap_pfn_range() covers it. Its pages are marked reserved, as in
 * the 2.6 article (see netlink.c for why that is documentation today).
 *
 * /dev/rig_vmalloc maps a vmalloc()ed buffer: only virtually contiguous,
 * so it is mapped one page at a time, each with its own pfn from
 * vmalloc_to_pfn(). (remap_vmalloc_range() does the same for a
 * vmalloc_user() buffer; the loop shows what it does.)
 *
 * A mapping must be shared and lie within the buffer (-EINVAL). read()
 * returns the kernel's view of the buffer, so a check can compare it with
 * what userspace wrote through the mapping; RIG_IOC_REGION_INFO says how
 * big the buffer is.
 */
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

/* One buffer and its device. */
struct rig_buf_dev {
	struct miscdevice misc;
	void *buf;
	size_t size;
	bool vmalloced;
	u32 kind;			/* RIG_REGION_* */
	const char *greeting;
	struct rig_region region;
};

static struct rig_buf_dev *rig_buf_dev(struct file *file)
{
	/* misc_open() leaves the miscdevice in private_data. */
	return container_of(file->private_data, struct rig_buf_dev, misc);
}

static ssize_t rig_buf_read(struct file *file, char __user *ubuf,
			    size_t count, loff_t *ppos)
{
	struct rig_buf_dev *d = rig_buf_dev(file);

	return simple_read_from_buffer(ubuf, count, ppos, d->buf, d->size);
}

static int rig_buf_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct rig_buf_dev *d = rig_buf_dev(file);
	unsigned long npages = d->size >> PAGE_SHIFT;
	unsigned long i;
	int ret;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;

	/* Counted in pages, so neither offset nor length can overflow. */
	if (vma->vm_pgoff >= npages || vma_pages(vma) > npages - vma->vm_pgoff)
		return -EINVAL;

	rig_count(mmaps);
	rig_vm_flags_set(vma, VM_IO | RIG_VM_RESERVED);

	if (!d->vmalloced)
		return remap_pfn_range(vma, vma->vm_start,
				       (virt_to_phys(d->buf) >> PAGE_SHIFT) +
				       vma->vm_pgoff,
				       vma->vm_end - vma->vm_start,
				       vma->vm_page_prot);

	for (i = 0; i < vma_pages(vma); i++) {
		void *page = d->buf + ((vma->vm_pgoff + i) << PAGE_SHIFT);

		ret = remap_pfn_range(vma, vma->vm_start + (i << PAGE_SHIFT),
				      vmalloc_to_pfn(page), PAGE_SIZE,
				      vma->vm_page_prot);
		if (ret)
			return ret;
	}
	return 0;
}

static long rig_buf_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct rig_buf_dev *d = rig_buf_dev(file);

	if (cmd != RIG_IOC_REGION_INFO)
		return -ENOTTY;
	/* vmalloc'd pages have no single physical start: report 0. */
	return rig_region_info_reply(arg,
				     d->vmalloced ? 0 : virt_to_phys(d->buf),
				     d->size, d->kind);
}

RIG_DEFINE_IOCTL(rig_buf)

static const struct file_operations rig_buf_fops = {
	.owner		= THIS_MODULE,
	.read		= rig_buf_read,
	.llseek		= default_llseek,
	.mmap		= rig_buf_mmap,
	RIG_FOPS_IOCTL(rig_buf),
};

static struct rig_buf_dev rig_kmalloc_dev = {
	.misc = {
		.minor	= MISC_DYNAMIC_MINOR,
		.name	= RIG_KMALLOC_DEV_NAME,
		.fops	= &rig_buf_fops,
		.mode	= 0600,
	},
	.size		= RIG_KMALLOC_SIZE,
	.kind		= RIG_REGION_KMALLOC,
	.greeting	= RIG_KMALLOC_GREETING,
	.region		= { .name = "kmalloc", .kind = "kmalloc" },
};

static struct rig_buf_dev rig_vmalloc_dev = {
	.misc = {
		.minor	= MISC_DYNAMIC_MINOR,
		.name	= RIG_VMALLOC_DEV_NAME,
		.fops	= &rig_buf_fops,
		.mode	= 0600,
	},
	.size		= RIG_VMALLOC_SIZE,
	.vmalloced	= true,
	.kind		= RIG_REGION_VMALLOC,
	.greeting	= RIG_VMALLOC_GREETING,
	.region		= { .name = "vmalloc", .kind = "vmalloc" },
};

static void rig_kmalloc_free(void *buf)
{
	size_t off;

	if (!buf)
		return;
	for (off = 0; off < RIG_KMALLOC_SIZE; off += PAGE_SIZE)
		ClearPageReserved(virt_to_page(buf + off));
	kfree(buf);
}

static void *rig_kmalloc_alloc(void)
{
	size_t off;
	void *buf;

	/*
	 * A power-of-two kmalloc() is naturally aligned, so this one starts
	 * on a page and its pages belong to it alone (mapping a page that
	 * also holds other objects would expose them).
	 */
	buf = kzalloc(RIG_KMALLOC_SIZE, GFP_KERNEL);
	if (!buf)
		return NULL;
	if (!PAGE_ALIGNED(buf)) {
		kfree(buf);
		return NULL;
	}
	for (off = 0; off < RIG_KMALLOC_SIZE; off += PAGE_SIZE)
		SetPageReserved(virt_to_page(buf + off));
	return buf;
}

static int rig_buf_dev_register(struct rig_buf_dev *d)
{
	int ret;

	strscpy(d->buf, d->greeting, d->size);
	ret = misc_register(&d->misc);
	if (ret)
		return ret;

	d->region.phys = d->vmalloced ? 0 : virt_to_phys(d->buf);
	d->region.size = d->size;
	rig_region_add(&d->region);
	return 0;
}

static void rig_buf_dev_deregister(struct rig_buf_dev *d)
{
	rig_region_del(&d->region);
	misc_deregister(&d->misc);
}

int rig_mmap_dev_init(void)
{
	int ret;

	BUILD_BUG_ON(!IS_ALIGNED(RIG_KMALLOC_SIZE, PAGE_SIZE) ||
		     (RIG_KMALLOC_SIZE & (RIG_KMALLOC_SIZE - 1)));
	BUILD_BUG_ON(!IS_ALIGNED(RIG_VMALLOC_SIZE, PAGE_SIZE));

	rig_kmalloc_dev.buf = rig_kmalloc_alloc();
	if (!rig_kmalloc_dev.buf)
		return -ENOMEM;

	rig_vmalloc_dev.buf = vzalloc(RIG_VMALLOC_SIZE);
	if (!rig_vmalloc_dev.buf) {
		ret = -ENOMEM;
		goto err_free_kmalloc;
	}

	ret = rig_buf_dev_register(&rig_kmalloc_dev);
	if (ret)
		goto err_free_vmalloc;

	ret = rig_buf_dev_register(&rig_vmalloc_dev);
	if (ret)
		goto err_deregister_kmalloc;

	return 0;

err_deregister_kmalloc:
	rig_buf_dev_deregister(&rig_kmalloc_dev);
err_free_vmalloc:
	vfree(rig_vmalloc_dev.buf);
err_free_kmalloc:
	rig_kmalloc_free(rig_kmalloc_dev.buf);
	return ret;
}

/* Only runs when no file, hence no mapping, is left (.owner). */
void rig_mmap_dev_exit(void)
{
	rig_buf_dev_deregister(&rig_vmalloc_dev);
	rig_buf_dev_deregister(&rig_kmalloc_dev);
	vfree(rig_vmalloc_dev.buf);
	rig_kmalloc_free(rig_kmalloc_dev.buf);
}
