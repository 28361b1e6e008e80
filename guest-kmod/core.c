// SPDX-License-Identifier: GPL-2.0
/*
 * State the parts of the module share, and nothing else:
 *
 *   counters      what the mechanisms did (rig_count())
 *   regions       the memory regions the module holds
 *   stats lines   a callback per part that has state of its own to show
 *   region info   the RIG_IOC_REGION_INFO answer of the mapping devices
 *
 * procfs.c displays all of it. Everything here is initialised statically,
 * so a part may use it from its own init on, whatever the order.
 */
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "rig_kmod.h"

struct rig_stats rig_stats;

/* ---- regions ------------------------------------------------------------ */

static LIST_HEAD(rig_regions);
/* Held from ->start to ->stop of a read of /proc/rig_kmod/regions. */
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

void *rig_regions_start(struct seq_file *m, loff_t *pos)
{
	mutex_lock(&rig_regions_lock);
	/* Position 0 is the list head: the title line. */
	return seq_list_start_head(&rig_regions, *pos);
}

void *rig_regions_next(struct seq_file *m, void *v, loff_t *pos)
{
	return seq_list_next(v, &rig_regions, pos);
}

void rig_regions_stop(struct seq_file *m, void *v)
{
	mutex_unlock(&rig_regions_lock);
}

/* The region at an iterator position; NULL at the title line. */
const struct rig_region *rig_regions_entry(void *v)
{
	if (v == &rig_regions)
		return NULL;
	return list_entry(v, struct rig_region, node);
}

/* ---- stats lines -------------------------------------------------------- */

static LIST_HEAD(rig_stats_sources);
/* Held while the callbacks run, so a part's exit waits for its show. */
static DEFINE_MUTEX(rig_stats_lock);

void rig_stats_add(struct rig_stats_source *src)
{
	mutex_lock(&rig_stats_lock);
	list_add_tail(&src->node, &rig_stats_sources);
	mutex_unlock(&rig_stats_lock);
}

void rig_stats_del(struct rig_stats_source *src)
{
	mutex_lock(&rig_stats_lock);
	list_del(&src->node);
	mutex_unlock(&rig_stats_lock);
}

/* Each part's lines, in the order the parts registered. */
void rig_stats_show_sources(struct seq_file *m)
{
	struct rig_stats_source *src;

	mutex_lock(&rig_stats_lock);
	list_for_each_entry(src, &rig_stats_sources, node)
		src->show(m);
	mutex_unlock(&rig_stats_lock);
}

/* ---- RIG_IOC_REGION_INFO ------------------------------------------------ */

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
