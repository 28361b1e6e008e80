// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/rig_kmod: what the module holds, with seq_file.
 *
 *   regions  one line per memory region, through a seq_operations
 *            iterator over the region list (start/next/stop/show), so a
 *            reader that reads a byte at a time still gets whole lines
 *   stats    counters, pool and doorbell state, with single_open()
 *   kfile    made by kfile.c
 *
 * 2.6 drivers used create_proc_entry() and a read_proc callback that had
 * to handle offsets and page-sized buffers by hand; seq_file does that.
 */
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

struct rig_stats rig_stats;

static struct proc_dir_entry *rig_proc_root;

/* The regions; the lock is held from ->start to ->stop of a read. */
static LIST_HEAD(rig_regions);
static DEFINE_MUTEX(rig_regions_lock);

void rig_region_add(struct rig_region *region)
{
	mutex_lock(&rig_regions_lock);
	list_add_tail(&region->node, &rig_regions);
	mutex_unlock(&rig_regions_lock);
}

void rig_region_del(struct rig_region *region)
{
	mutex_lock(&rig_regions_lock);
	list_del(&region->node);
	mutex_unlock(&rig_regions_lock);
}

/* Answers RIG_IOC_REGION_INFO for one of the mappable regions. */
long rig_region_info_reply(unsigned long arg, u64 phys, u64 size, u32 kind)
{
	struct rig_region_info info = {
		.phys = phys,
		.size = size,
		.kind = kind,
	};

	if (copy_to_user((void __user *)arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

struct proc_dir_entry *rig_proc_dir(void)
{
	return rig_proc_root;
}

/* ---- regions: a seq_file iterator ------------------------------------ */

static void *rig_regions_start(struct seq_file *m, loff_t *pos)
{
	mutex_lock(&rig_regions_lock);
	/* Position 0 is the title line. */
	return seq_list_start_head(&rig_regions, *pos);
}

static void *rig_regions_next(struct seq_file *m, void *v, loff_t *pos)
{
	return seq_list_next(v, &rig_regions, pos);
}

static void rig_regions_stop(struct seq_file *m, void *v)
{
	mutex_unlock(&rig_regions_lock);
}

static int rig_regions_show(struct seq_file *m, void *v)
{
	const struct rig_region *r;

	if (v == &rig_regions) {
		seq_printf(m, "%-10s %-9s %-18s %s\n", "name", "kind", "phys",
			   "size");
		return 0;
	}

	r = list_entry(v, struct rig_region, node);
	if (r->phys)
		seq_printf(m, "%-10s %-9s %#-18llx %#zx\n", r->name, r->kind,
			   (unsigned long long)r->phys, r->size);
	else
		seq_printf(m, "%-10s %-9s %-18s %#zx\n", r->name, r->kind, "-",
			   r->size);
	return 0;
}

static const struct seq_operations rig_regions_seq_ops = {
	.start	= rig_regions_start,
	.next	= rig_regions_next,
	.stop	= rig_regions_stop,
	.show	= rig_regions_show,
};

static int rig_regions_open(struct inode *inode, struct file *file)
{
	return seq_open(file, &rig_regions_seq_ops);
}

RIG_DEFINE_PROC_OPS(rig_regions_proc_ops, rig_regions_open, seq_release,
		    NULL);

/* ---- stats: single_open ---------------------------------------------- */

static int rig_stats_show(struct seq_file *m, void *v)
{
	struct rig_stats *s = m->private;

#define RIG_SHOW(field) \
	seq_printf(m, "%-16s %ld\n", #field, atomic_long_read(&s->field))
	RIG_SHOW(netlink_requests);
	RIG_SHOW(netlink_denied);
	RIG_SHOW(mem_mmaps);
	RIG_SHOW(mmaps);
	RIG_SHOW(faults);
	RIG_SHOW(sigbus);
	RIG_SHOW(sockopt_sets);
	RIG_SHOW(sockopt_gets);
	RIG_SHOW(sockopt_errors);
	RIG_SHOW(rw_reads);
	RIG_SHOW(rw_writes);
	RIG_SHOW(ioctls);
	RIG_SHOW(ioctl_errors);
	RIG_SHOW(kfile_writes);
	RIG_SHOW(kfile_reads);
#undef RIG_SHOW
	rig_kfile_show(m);
	rig_reserved_show(m);
	rig_pool_show(m);
	rig_doorbell_show(m);
	return 0;
}

static int rig_stats_open(struct inode *inode, struct file *file)
{
	return single_open(file, rig_stats_show, rig_pde_data(inode));
}

RIG_DEFINE_PROC_OPS(rig_stats_proc_ops, rig_stats_open, single_release,
		    NULL);

int rig_procfs_init(void)
{
	rig_proc_root = proc_mkdir(RIG_PROC_DIR, NULL);
	if (!rig_proc_root)
		return -ENOMEM;

	if (!proc_create_data("regions", 0444, rig_proc_root,
			      &rig_regions_proc_ops, NULL) ||
	    !proc_create_data("stats", 0444, rig_proc_root,
			      &rig_stats_proc_ops, &rig_stats)) {
		remove_proc_subtree(RIG_PROC_DIR, NULL);
		return -ENOMEM;
	}

	return 0;
}

void rig_procfs_exit(void)
{
	remove_proc_subtree(RIG_PROC_DIR, NULL);
}
