// SPDX-License-Identifier: GPL-2.0
/*
 * Revocable user mappings of BAR2.
 *
 * /dev/rig_shm, /dev/rig_pool and /dev/rig_mem let processes map parts of
 * the ivshmem BAR2. Such a mapping must not outlive the device: after
 * unbind the BAR is released, and its addresses may go to another device.
 * So, as vfio does, each of those nodes has a struct rig_barmap:
 *
 *  - Every file opened on the node uses the address_space of one inode of
 *    the module's own (from a private pseudo filesystem, like vfio's and
 *    /dev/mem's), so one unmap_mapping_range() reaches every mapping made
 *    through any node of the device, in any process, forked ones too.
 *  - mmap() only checks and records; each page is inserted at its first
 *    touch (vmf_insert_pfn()) under the lock detach takes. Inserting at
 *    mmap() time (io_remap_pfn_range()) would race with detach: the vma
 *    joins the address_space only after ->mmap returns, so a detach in
 *    between would not find it.
 *  - Detach bumps the generation and zaps the window. A later touch of an
 *    old mapping faults, finds a generation that is not the current one
 *    and gets SIGBUS, also after a device is attached again.
 */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/pseudo_fs.h>

#include "compat.h"
#include "rig_kmod.h"

#define RIG_BARMAP_MAGIC	0x52494746	/* "RIGF" */

static struct vfsmount *rig_barmap_mnt;
static int rig_barmap_mnt_count;

static int rig_barmap_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, RIG_BARMAP_MAGIC) ? 0 : -ENOMEM;
}

/*
 * Never registered, so nobody can mount it. No .owner: the mount lives
 * from load to unload, and the reference it would hold on the module
 * would make rmmod fail for ever. No code of the module runs once it is
 * released: the superblock and its inodes use the kernel's own operations.
 */
static struct file_system_type rig_barmap_fs_type = {
	.name			= KBUILD_MODNAME "_barmap",
	.init_fs_context	= rig_barmap_init_fs_context,
	.kill_sb		= kill_anon_super,
};

static vm_fault_t rig_barmap_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct rig_barmap *bm = vma->vm_file->f_mapping->host->i_private;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	pgoff_t off;

	mutex_lock(&bm->lock);
	off = vmf->pgoff - bm->pgoff;
	/* Only the attachment the mapping was made for, and inside it. */
	if (bm->npages && (unsigned long)vma->vm_private_data == bm->gen &&
	    off < bm->npages)
		ret = vmf_insert_pfn(vma, vmf->address,
				     PHYS_PFN(bm->phys) + off);
	mutex_unlock(&bm->lock);
	return ret;
}

static const struct vm_operations_struct rig_barmap_vm_ops = {
	.fault	= rig_barmap_fault,
};

/* Call from the node's open: the file's mappings become revocable. */
void rig_barmap_open(struct rig_barmap *bm, struct file *file)
{
	file->f_mapping = bm->inode->i_mapping;
}

/*
 * The node's mmap: a shared mapping inside the window, -EINVAL outside,
 * -ENODEV while detached. Nothing is mapped yet.
 */
int rig_barmap_mmap(struct rig_barmap *bm, struct vm_area_struct *vma)
{
	unsigned long off;
	int ret = 0;

	/* A private mapping would copy on write and never reach the host. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;

	mutex_lock(&bm->lock);
	off = vma->vm_pgoff - bm->pgoff;
	if (!bm->npages) {
		ret = -ENODEV;
	/* Counted in pages, so neither offset nor length can overflow. */
	} else if (vma->vm_pgoff < bm->pgoff || off >= bm->npages ||
		   vma_pages(vma) > bm->npages - off) {
		ret = -EINVAL;
	} else {
		/*
		 * The page protection stays the default write-back one:
		 * vmf_insert_pfn() takes the memory type the kernel's
		 * memremap() of BAR2 reserved (x86 PAT).
		 */
		rig_vm_flags_set(vma, VM_IO | VM_PFNMAP | RIG_VM_RESERVED);
		vma->vm_ops = &rig_barmap_vm_ops;
		vma->vm_private_data = (void *)bm->gen;
	}
	mutex_unlock(&bm->lock);
	return ret;
}

/* Makes [phys, phys + size) mappable at file offset pgoff (in pages). */
void rig_barmap_attach(struct rig_barmap *bm, phys_addr_t phys,
		       resource_size_t size, pgoff_t pgoff)
{
	mutex_lock(&bm->lock);
	bm->phys = phys;
	bm->npages = size >> PAGE_SHIFT;
	bm->pgoff = pgoff;
	mutex_unlock(&bm->lock);
}

/* Revokes every mapping of the window; later touches get SIGBUS. */
void rig_barmap_detach(struct rig_barmap *bm)
{
	mutex_lock(&bm->lock);
	if (bm->npages) {
		unmap_mapping_range(bm->inode->i_mapping,
				    (loff_t)bm->pgoff << PAGE_SHIFT,
				    (loff_t)bm->npages << PAGE_SHIFT, 1);
		bm->npages = 0;
		bm->gen++;
	}
	mutex_unlock(&bm->lock);
}

/* The window while attached: false when detached. */
bool rig_barmap_window(struct rig_barmap *bm, phys_addr_t *phys,
		       resource_size_t *size)
{
	bool attached;

	mutex_lock(&bm->lock);
	attached = bm->npages;
	*phys = bm->phys;
	*size = (resource_size_t)bm->npages << PAGE_SHIFT;
	mutex_unlock(&bm->lock);
	return attached;
}

int rig_barmap_init(struct rig_barmap *bm)
{
	struct inode *inode;
	int ret;

	mutex_init(&bm->lock);
	bm->npages = 0;
	bm->gen = 0;

	ret = simple_pin_fs(&rig_barmap_fs_type, &rig_barmap_mnt,
			    &rig_barmap_mnt_count);
	if (ret)
		return ret;

	inode = alloc_anon_inode(rig_barmap_mnt->mnt_sb);
	if (IS_ERR(inode)) {
		simple_release_fs(&rig_barmap_mnt, &rig_barmap_mnt_count);
		return PTR_ERR(inode);
	}
	inode->i_private = bm;
	bm->inode = inode;
	return 0;
}

/* Only runs when no file of the node, hence no mapping, is left. */
void rig_barmap_exit(struct rig_barmap *bm)
{
	iput(bm->inode);
	bm->inode = NULL;
	simple_release_fs(&rig_barmap_mnt, &rig_barmap_mnt_count);
	mutex_destroy(&bm->lock);
}
