// SPDX-License-Identifier: GPL-2.0
/*
 * 5. /proc/rig_kmod: what the module holds, with seq_file.
 *
 *   regions  one line per memory region, through a seq_operations
 *            iterator over core.c's region list (start/next/stop/show),
 *            so a reader that reads a byte at a time still gets whole
 *            lines
 *   stats    core.c's counters, then the lines each part registered
 *            (kfile, reserved, pool, doorbell), with single_open()
 *   kfile    made by kfile.c
 *
 * This file only displays; the state is core.c's and the parts'.
 *
 * 2.6 drivers used create_proc_entry() and a read_proc callback that had
 * to handle offsets and page-sized buffers by hand; seq_file does that.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static struct proc_dir_entry *rig_proc_root;

struct proc_dir_entry *rig_proc_dir(void)
{
	return rig_proc_root;
}

/* ---- regions: a seq_file iterator ------------------------------------ */

static int rig_regions_show(struct seq_file *m, void *v)
{
	const struct rig_region *r = rig_regions_entry(v);

	if (!r)
		seq_printf(m, "%-12s %-12s %-18s %s\n", "name", "kind", "phys",
			   "size");
	else if (r->phys)
		seq_printf(m, "%-12s %-12s %#-18llx %#zx\n", r->name, r->kind,
			   (unsigned long long)r->phys, r->size);
	else
		seq_printf(m, "%-12s %-12s %-18s %#zx\n", r->name, r->kind, "-",
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
	rig_stats_show_sources(m);
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
