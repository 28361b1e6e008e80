// SPDX-License-Identifier: GPL-2.0
/*
 * 2. mmap over kmalloc'd and over vmalloc'd pages, the articles' way and
 *    the way current code does it.
 *
 * /dev/rig_kmalloc maps a kmalloc()ed buffer: physically contiguous, so
 * one remap_pfn_range() covers it. The articles also marked each page
 * reserved (SetPageReserved) first; that is left out here. Since 2.6.15
 * remap_pfn_range() makes a VM_PFNMAP mapping, which takes no page
 * references and needs no PG_reserved, and on this buffer it would be
 * wrong: a kmalloc() above two pages comes from the page allocator as one
 * compound page, and PG_reserved must not be set on compound pages
 * (PF_NO_COMPOUND: a kernel with CONFIG_DEBUG_VM_PGFLAGS stops there).
 *
 * /dev/rig_vmalloc maps a vmalloc()ed buffer: only virtually contiguous,
 * so it is mapped one page at a time, each with its own pfn from
 * vmalloc_to_pfn(), as the articles did.
 *
 * /dev/rig_vmalloc_user is what current code writes instead of either:
 * vmalloc_user() (zeroed, marked for user mapping) and
 * remap_vmalloc_range(), which inserts the pages with vm_insert_page().
 * Those are ordinary, reference-counted mappings: the pages count as
 * mapped, and they cannot be freed under a process that still maps them.
 * A driver that needs physically contiguous memory (DMA) uses
 * alloc_pages() or dma_alloc_coherent() and maps that, without
 * PG_reserved.
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

/* How a buffer is allocated, and so how it is mapped. */
enum rig_buf_alloc {
	RIG_BUF_KMALLOC,	/* kmalloc(), one remap_pfn_range() */
	RIG_BUF_VMALLOC,	/* vmalloc(), remap_pfn_range() per page */
	RIG_BUF_VMALLOC_USER,	/* vmalloc_user(), remap_vmalloc_range() */
};

/* One buffer and its device. */
struct rig_buf_dev {
	struct miscdevice misc;
	void *buf;
	size_t size;
	enum rig_buf_alloc alloc;
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

/* The articles' vmalloc mapping: one pfn per page. */
static int rig_buf_remap_vmalloc(struct rig_buf_dev *d,
				 struct vm_area_struct *vma)
{
	unsigned long i;
	int ret;

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

static int rig_buf_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct rig_buf_dev *d = rig_buf_dev(file);
	unsigned long npages = d->size >> PAGE_SHIFT;
	int ret;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;

	/* Counted in pages, so neither offset nor length can overflow. */
	if (vma->vm_pgoff >= npages || vma_pages(vma) > npages - vma->vm_pgoff)
		return -EINVAL;

	switch (d->alloc) {
	case RIG_BUF_KMALLOC:
		rig_vm_flags_set(vma, VM_IO | RIG_VM_RESERVED);
		ret = remap_pfn_range(vma, vma->vm_start,
				      (virt_to_phys(d->buf) >> PAGE_SHIFT) +
				      vma->vm_pgoff,
				      vma->vm_end - vma->vm_start,
				      vma->vm_page_prot);
		break;
	case RIG_BUF_VMALLOC:
		rig_vm_flags_set(vma, VM_IO | RIG_VM_RESERVED);
		ret = rig_buf_remap_vmalloc(d, vma);
		break;
	default:
		/* Sets VM_DONTEXPAND | VM_DONTDUMP itself; no VM_IO: RAM. */
		ret = remap_vmalloc_range(vma, d->buf, vma->vm_pgoff);
		break;
	}

	if (!ret)
		rig_count(mmaps);
	return ret;
}

static long rig_buf_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct rig_buf_dev *d = rig_buf_dev(file);

	if (cmd != RIG_IOC_REGION_INFO)
		return -ENOTTY;
	return rig_region_info_reply(arg, d->region.phys, d->size, d->kind);
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
	.alloc		= RIG_BUF_KMALLOC,
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
	.alloc		= RIG_BUF_VMALLOC,
	.kind		= RIG_REGION_VMALLOC,
	.greeting	= RIG_VMALLOC_GREETING,
	.region		= { .name = "vmalloc", .kind = "vmalloc" },
};

static struct rig_buf_dev rig_vmalloc_user_dev = {
	.misc = {
		.minor	= MISC_DYNAMIC_MINOR,
		.name	= RIG_VMALLOC_USER_DEV_NAME,
		.fops	= &rig_buf_fops,
		.mode	= 0600,
	},
	.size		= RIG_VMALLOC_USER_SIZE,
	.alloc		= RIG_BUF_VMALLOC_USER,
	.kind		= RIG_REGION_VMALLOC_USER,
	.greeting	= RIG_VMALLOC_USER_GREETING,
	.region		= { .name = "vmalloc_user", .kind = "vmalloc" },
};

static void *rig_kmalloc_alloc(void)
{
	void *buf;

	/*
	 * A power-of-two kmalloc() is naturally aligned, so this one starts
	 * on a page and its pages belong to it alone (mapping a page that
	 * also holds other objects would expose them).
	 */
	buf = kzalloc(RIG_KMALLOC_SIZE, GFP_KERNEL);
	if (buf && !PAGE_ALIGNED(buf)) {
		kfree(buf);
		return NULL;
	}
	return buf;
}

static int rig_buf_alloc(struct rig_buf_dev *d)
{
	switch (d->alloc) {
	case RIG_BUF_KMALLOC:
		d->buf = rig_kmalloc_alloc();
		break;
	case RIG_BUF_VMALLOC:
		d->buf = vzalloc(d->size);
		break;
	default:
		d->buf = vmalloc_user(d->size);
		break;
	}
	if (!d->buf)
		return -ENOMEM;

	strscpy(d->buf, d->greeting, d->size);
	/* vmalloc'd pages have no single physical start: 0. */
	d->region.phys = d->alloc == RIG_BUF_KMALLOC ? virt_to_phys(d->buf) : 0;
	d->region.size = d->size;
	return 0;
}

static void rig_buf_free(struct rig_buf_dev *d)
{
	if (d->alloc == RIG_BUF_KMALLOC)
		kfree(d->buf);
	else
		vfree(d->buf);
	d->buf = NULL;
}

static int rig_buf_dev_register(struct rig_buf_dev *d)
{
	int ret;

	ret = rig_buf_alloc(d);
	if (ret)
		return ret;

	ret = misc_register(&d->misc);
	if (ret) {
		rig_buf_free(d);
		return ret;
	}

	rig_region_add(&d->region);
	return 0;
}

/* Only runs when no file, hence no mapping, is left (.owner). */
static void rig_buf_dev_deregister(struct rig_buf_dev *d)
{
	rig_region_del(&d->region);
	misc_deregister(&d->misc);
	rig_buf_free(d);
}

int rig_mmap_dev_init(void)
{
	int ret;

	BUILD_BUG_ON(!IS_ALIGNED(RIG_KMALLOC_SIZE, PAGE_SIZE) ||
		     (RIG_KMALLOC_SIZE & (RIG_KMALLOC_SIZE - 1)));
	BUILD_BUG_ON(!IS_ALIGNED(RIG_VMALLOC_SIZE, PAGE_SIZE));
	BUILD_BUG_ON(!IS_ALIGNED(RIG_VMALLOC_USER_SIZE, PAGE_SIZE));

	ret = rig_buf_dev_register(&rig_kmalloc_dev);
	if (ret)
		return ret;

	ret = rig_buf_dev_register(&rig_vmalloc_dev);
	if (ret)
		goto err_deregister_kmalloc;

	ret = rig_buf_dev_register(&rig_vmalloc_user_dev);
	if (ret)
		goto err_deregister_vmalloc;

	return 0;

err_deregister_vmalloc:
	rig_buf_dev_deregister(&rig_vmalloc_dev);
err_deregister_kmalloc:
	rig_buf_dev_deregister(&rig_kmalloc_dev);
	return ret;
}

void rig_mmap_dev_exit(void)
{
	rig_buf_dev_deregister(&rig_vmalloc_user_dev);
	rig_buf_dev_deregister(&rig_vmalloc_dev);
	rig_buf_dev_deregister(&rig_kmalloc_dev);
}
