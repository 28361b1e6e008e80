/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel version compatibility: the only place rig_kmod looks at the
 * kernel version, so the .c files read as plain current kernel code.
 *
 * The module builds for every kernel the rig boots (5.10 onwards). Each
 * kernel API change it meets gets one wrapper here, with the release that
 * changed the API and the older form it replaces.
 */
#ifndef _RIG_COMPAT_H
#define _RIG_COMPAT_H

#include <linux/device.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/version.h>

/*
 * Building against kernel a.b.c or later. checkpatch warns about
 * LINUX_VERSION_CODE once, here; it targets in-tree code, which only ever
 * builds against its own tree.
 */
#define RIG_KERNEL_SINCE(a, b, c)	(KERNEL_VERSION(a, b, c) <= LINUX_VERSION_CODE)

/*
 * 6.4 dropped the owner argument: class_create(THIS_MODULE, name) became
 * class_create(name).
 */
static inline struct class *rig_class_create(const char *name)
{
#if RIG_KERNEL_SINCE(6, 4, 0)
	return class_create(name);
#else
	return class_create(THIS_MODULE, name);
#endif
}

/*
 * 6.2 made the class devnode callback take a const struct device *; from
 * 2.6 to 6.1 it took a plain struct device *. Use as
 * char *fn(RIG_DEVNODE_CONST struct device *dev, umode_t *mode).
 */
#if RIG_KERNEL_SINCE(6, 2, 0)
#define RIG_DEVNODE_CONST const
#else
#define RIG_DEVNODE_CONST
#endif

/*
 * 6.3 made vma->vm_flags read-only outside the mm core and added
 * vm_flags_set(); before, drivers wrote vma->vm_flags |= flags directly.
 * The wrapper has its own name because some vendor kernels below 6.3
 * backport vm_flags_set().
 */
static inline void rig_vm_flags_set(struct vm_area_struct *vma,
				    vm_flags_t flags)
{
#if RIG_KERNEL_SINCE(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/*
 * Documented only, nothing to wrap from 5.10 on:
 *
 * 3.7 removed VM_RESERVED, which 2.6 drivers set on mmap()ed device
 * memory; its meaning is now spelled VM_DONTEXPAND | VM_DONTDUMP (VM_IO
 * and VM_PFNMAP, set by io_remap_pfn_range(), cover the rest).
 */

#endif /* _RIG_COMPAT_H */
