/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel version compatibility: the only place rig_kmod looks at the
 * kernel version, so the .c files read as plain current kernel code.
 *
 * The module builds for every kernel the rig boots (5.10 onwards). Each
 * kernel API change it meets gets one shim here, written the same way so
 * that tools (rig apidiff) and people can find them:
 *
 *   rig-compat marker: item | version of the change | 2.6-era form | modern form
 *   #if RIG_KERNEL_SINCE(x, y, z) && !defined(RIG_FORCE_OLD_<item>)
 *   modern form
 *   #else
 *   2.6-era form
 *   #endif
 *
 * Building with KCFLAGS=-DRIG_FORCE_OLD_<item> selects the 2.6 form of that
 * item everywhere it is used. For changes older than 5.10 that form is the
 * real 2.6 code, so such a build fails on every kernel the rig supports:
 * it shows what the old articles wrote and that it no longer compiles.
 * docs/api-changes.md lists the items and the files that use them.
 */
#ifndef _RIG_COMPAT_H
#define _RIG_COMPAT_H

#include <linux/device.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/netlink.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/version.h>

/*
 * Building against kernel a.b.c or later. checkpatch warns about
 * LINUX_VERSION_CODE once, here; it targets in-tree code, which only ever
 * builds against its own tree.
 */
#define RIG_KERNEL_SINCE(a, b, c)	(KERNEL_VERSION(a, b, c) <= LINUX_VERSION_CODE)

/*
 * 2.6.23 replaced .nopage, which returned the page (or NOPAGE_SIGBUS),
 * with .fault, which fills vmf->page; 4.17 made it return vm_fault_t.
 * A driver writes <prefix>_page(vma, pgoff), returning the page to map or
 * NULL for SIGBUS, then RIG_DEFINE_FAULT(prefix) and, in its
 * vm_operations_struct, RIG_VM_OPS_FAULT(prefix).
 */
/* rig-compat: nopage_fault | 2.6.23 | .nopage(vma, address, type) returns the page or NOPAGE_SIGBUS | .fault(vmf) sets vmf->page, returns vm_fault_t */
#if RIG_KERNEL_SINCE(2, 6, 23) && !defined(RIG_FORCE_OLD_nopage_fault)
#define RIG_DEFINE_FAULT(prefix)					\
static vm_fault_t prefix##_fault(struct vm_fault *vmf)			\
{									\
	struct page *page = prefix##_page(vmf->vma, vmf->pgoff);	\
									\
	if (!page)							\
		return VM_FAULT_SIGBUS;					\
	get_page(page);							\
	vmf->page = page;						\
	return 0;							\
}
#define RIG_VM_OPS_FAULT(prefix)	.fault = prefix##_fault
#else
#define RIG_DEFINE_FAULT(prefix)					\
static struct page *prefix##_nopage(struct vm_area_struct *vma,	\
				    unsigned long address, int *type)	\
{									\
	struct page *page = prefix##_page(vma, vma->vm_pgoff +		\
		((address - vma->vm_start) >> PAGE_SHIFT));		\
									\
	if (!page)							\
		return NOPAGE_SIGBUS;					\
	get_page(page);							\
	if (type)							\
		*type = VM_FAULT_MINOR;					\
	return page;							\
}
#define RIG_VM_OPS_FAULT(prefix)	.nopage = prefix##_nopage
#endif

/*
 * 2.6.36 removed .ioctl, called under the big kernel lock with the inode
 * as first argument; .unlocked_ioctl (2.6.11) takes the file only.
 * compat_ptr_ioctl (5.5) serves 32-bit callers, as the argument is
 * always a pointer. A driver writes <prefix>_ioctl(file, cmd, arg), then
 * RIG_DEFINE_IOCTL(prefix) and, in its file_operations,
 * RIG_FOPS_IOCTL(prefix).
 */
/* rig-compat: unlocked_ioctl | 2.6.36 | .ioctl(inode, filp, cmd, arg) under the BKL | .unlocked_ioctl(filp, cmd, arg) */
#if RIG_KERNEL_SINCE(2, 6, 36) && !defined(RIG_FORCE_OLD_unlocked_ioctl)
#define RIG_DEFINE_IOCTL(prefix)
#define RIG_FOPS_IOCTL(prefix)						\
	.unlocked_ioctl = prefix##_ioctl, .compat_ioctl = compat_ptr_ioctl
#else
#define RIG_DEFINE_IOCTL(prefix)					\
static int prefix##_bkl_ioctl(struct inode *inode, struct file *file,	\
			      unsigned int cmd, unsigned long arg)	\
{									\
	return prefix##_ioctl(file, cmd, arg);				\
}
#define RIG_FOPS_IOCTL(prefix)	.ioctl = prefix##_bkl_ioctl
#endif

/*
 * 3.7 removed VM_RESERVED, which 2.6 drivers set on mmap()ed memory to
 * keep it out of swap and core dumps; its meaning is now spelled
 * VM_DONTEXPAND | VM_DONTDUMP (remap_pfn_range() adds VM_IO | VM_PFNMAP).
 */
/* rig-compat: vm_reserved | 3.7 | vma->vm_flags |= VM_RESERVED | VM_DONTEXPAND | VM_DONTDUMP */
#if RIG_KERNEL_SINCE(3, 7, 0) && !defined(RIG_FORCE_OLD_vm_reserved)
#define RIG_VM_RESERVED		(VM_DONTEXPAND | VM_DONTDUMP)
#else
#define RIG_VM_RESERVED		VM_RESERVED
#endif

/*
 * 3.6 replaced the arguments of netlink_kernel_create() after the unit
 * with a struct netlink_kernel_cfg, and 3.7 dropped the module argument
 * (2.6.24 had already moved the input callback from a socket to an skb).
 */
/* rig-compat: netlink_cfg | 3.7 | netlink_kernel_create(net, unit, groups, input, cb_mutex, THIS_MODULE) | netlink_kernel_create(net, unit, &cfg) */
#if RIG_KERNEL_SINCE(3, 7, 0) && !defined(RIG_FORCE_OLD_netlink_cfg)
static inline struct sock *
rig_netlink_kernel_create(struct net *net, int unit,
			  void (*input)(struct sk_buff *skb))
{
	struct netlink_kernel_cfg cfg = { .input = input };

	return netlink_kernel_create(net, unit, &cfg);
}
#else
static inline struct sock *
rig_netlink_kernel_create(struct net *net, int unit,
			  void (*input)(struct sk_buff *skb))
{
	return netlink_kernel_create(net, unit, 0, input, NULL, THIS_MODULE);
}
#endif

/*
 * 3.19 removed file->f_dentry; file_inode() (3.9) is the way to the
 * inode of an open file.
 */
/* rig-compat: f_dentry | 3.19 | filp->f_dentry->d_inode | file_inode(filp) */
#if RIG_KERNEL_SINCE(3, 19, 0) && !defined(RIG_FORCE_OLD_f_dentry)
#define rig_file_inode(filp)	file_inode(filp)
#else
#define rig_file_inode(filp)	((filp)->f_dentry->d_inode)
#endif

/*
 * 5.0 dropped the type argument (VERIFY_READ/VERIFY_WRITE) of
 * access_ok(). Call sites keep naming the direction for the reader.
 */
/* rig-compat: access_ok | 5.0 | access_ok(VERIFY_READ or VERIFY_WRITE, addr, size) | access_ok(addr, size) */
#if RIG_KERNEL_SINCE(5, 0, 0) && !defined(RIG_FORCE_OLD_access_ok)
#define rig_access_ok(type, addr, size)	access_ok(addr, size)
#else
#define rig_access_ok(type, addr, size)	access_ok(type, addr, size)
#endif

/*
 * 5.6 gave /proc files their own struct proc_ops; before they used
 * struct file_operations. RIG_DEFINE_PROC_OPS(name, open, release, write)
 * defines a seq_file-backed one (write may be NULL).
 */
/* rig-compat: proc_ops | 5.6 | struct file_operations for /proc files | struct proc_ops */
#if RIG_KERNEL_SINCE(5, 6, 0) && !defined(RIG_FORCE_OLD_proc_ops)
#define RIG_DEFINE_PROC_OPS(name, open_fn, release_fn, write_fn)	\
static const struct proc_ops name = {					\
	.proc_open	= open_fn,					\
	.proc_read	= seq_read,					\
	.proc_lseek	= seq_lseek,					\
	.proc_release	= release_fn,					\
	.proc_write	= write_fn,					\
}
#else
#define RIG_DEFINE_PROC_OPS(name, open_fn, release_fn, write_fn)	\
static const struct file_operations name = {				\
	.owner		= THIS_MODULE,					\
	.open		= open_fn,					\
	.read		= seq_read,					\
	.llseek		= seq_lseek,					\
	.release	= release_fn,					\
	.write		= write_fn,					\
}
#endif

/*
 * 5.9 changed the .set callback of struct nf_sockopt_ops to take a
 * sockptr_t (user or kernel memory) instead of a void __user pointer.
 * Use as int set(struct sock *sk, int optval, RIG_SOCKOPT_ARG arg,
 * unsigned int len) and rig_copy_from_sockopt(dst, arg, size), which
 * returns 0 or -EFAULT.
 */
/* rig-compat: nf_sockopt_sockptr | 5.9 | .set(sk, optval, void __user *user, len) with copy_from_user | .set(sk, optval, sockptr_t arg, len) with copy_from_sockptr */
#if RIG_KERNEL_SINCE(5, 9, 0) && !defined(RIG_FORCE_OLD_nf_sockopt_sockptr)
#define RIG_SOCKOPT_ARG				sockptr_t
#define rig_copy_from_sockopt(dst, src, size)	\
	(copy_from_sockptr(dst, src, size) ? -EFAULT : 0)
#else
#define RIG_SOCKOPT_ARG				void __user *
#define rig_copy_from_sockopt(dst, src, size)	\
	(copy_from_user(dst, src, size) ? -EFAULT : 0)
#endif

/*
 * 5.10 removed set_fs() on x86 (and kernel_read()/kernel_write() took
 * their current form in 4.14): 2.6 code widened the user address limit
 * with set_fs(KERNEL_DS) and passed a kernel buffer to vfs_read().
 */
/* rig-compat: kernel_read | 5.10 | set_fs(KERNEL_DS) + vfs_read/vfs_write on a kernel buffer | kernel_read/kernel_write */
#if RIG_KERNEL_SINCE(5, 10, 0) && !defined(RIG_FORCE_OLD_kernel_read)
static inline ssize_t rig_kernel_read(struct file *file, void *buf,
				      size_t count, loff_t *pos)
{
	return kernel_read(file, buf, count, pos);
}

static inline ssize_t rig_kernel_write(struct file *file, const void *buf,
				       size_t count, loff_t *pos)
{
	return kernel_write(file, buf, count, pos);
}
#else
static inline ssize_t rig_kernel_read(struct file *file, void *buf,
				      size_t count, loff_t *pos)
{
	mm_segment_t old_fs = get_fs();
	ssize_t ret;

	set_fs(KERNEL_DS);
	ret = vfs_read(file, (char __user *)buf, count, pos);
	set_fs(old_fs);
	return ret;
}

static inline ssize_t rig_kernel_write(struct file *file, const void *buf,
				       size_t count, loff_t *pos)
{
	mm_segment_t old_fs = get_fs();
	ssize_t ret;

	set_fs(KERNEL_DS);
	ret = vfs_write(file, (const char __user *)buf, count, pos);
	set_fs(old_fs);
	return ret;
}
#endif

/* 5.17 renamed PDE_DATA() to pde_data(). */
/* rig-compat: pde_data | 5.17 | PDE_DATA(inode) | pde_data(inode) */
#if RIG_KERNEL_SINCE(5, 17, 0) && !defined(RIG_FORCE_OLD_pde_data)
#define rig_pde_data(inode)	pde_data(inode)
#else
#define rig_pde_data(inode)	PDE_DATA(inode)
#endif

/*
 * 6.2 made the class devnode callback take a const struct device *; from
 * 2.6 to 6.1 it took a plain struct device *. Use as
 * char *fn(RIG_DEVNODE_CONST struct device *dev, umode_t *mode).
 */
/* rig-compat: devnode_const | 6.2 | char *(*devnode)(struct device *dev, umode_t *mode) | char *(*devnode)(const struct device *dev, umode_t *mode) */
#if RIG_KERNEL_SINCE(6, 2, 0) && !defined(RIG_FORCE_OLD_devnode_const)
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
/* rig-compat: vm_flags_set | 6.3 | vma->vm_flags |= flags | vm_flags_set(vma, flags) */
#if RIG_KERNEL_SINCE(6, 3, 0) && !defined(RIG_FORCE_OLD_vm_flags_set)
static inline void rig_vm_flags_set(struct vm_area_struct *vma,
				    vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}
#else
static inline void rig_vm_flags_set(struct vm_area_struct *vma,
				    vm_flags_t flags)
{
	vma->vm_flags |= flags;
}
#endif

/*
 * 6.4 dropped the owner argument: class_create(THIS_MODULE, name) became
 * class_create(name).
 */
/* rig-compat: class_create | 6.4 | class_create(THIS_MODULE, name) | class_create(name) */
#if RIG_KERNEL_SINCE(6, 4, 0) && !defined(RIG_FORCE_OLD_class_create)
static inline struct class *rig_class_create(const char *name)
{
	return class_create(name);
}
#else
static inline struct class *rig_class_create(const char *name)
{
	return class_create(THIS_MODULE, name);
}
#endif

/*
 * 6.12 removed no_llseek: a file that cannot seek leaves .llseek NULL
 * (and its open calls nonseekable_open(), as before). Debian's 6.1
 * already defines no_llseek as NULL, so testing for the macro would not
 * tell the versions apart.
 */
/* rig-compat: no_llseek | 6.12 | .llseek = no_llseek | .llseek left NULL */
#if RIG_KERNEL_SINCE(6, 12, 0) && !defined(RIG_FORCE_OLD_no_llseek)
#define RIG_NO_LLSEEK	NULL
#else
#define RIG_NO_LLSEEK	no_llseek
#endif

#endif /* _RIG_COMPAT_H */
