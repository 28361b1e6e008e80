/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations shared by the files of the module, grouped by the file that
 * defines them. Not an ABI: what userspace and the host see is in the uapi
 * header.
 *
 * Who calls whom, always one way:
 *
 *   main.c         sets up and tears down every part
 *   ivshmem_pci.c  owns the PCI device; probe hands it to doorbell.c,
 *                  pool.c, shm_dev.c and netlink.c, remove takes it back;
 *                  nothing calls back into it
 *   doorbell.c     tells pool.c about the host's interrupts
 *   core.c         counters, regions, stats lines: used by all, calls none
 *   barmap.c       revocable user mappings of BAR2, used by shm_dev.c,
 *                  pool.c and netlink.c
 *   procfs.c       displays what core.c holds
 *
 * One header rather than one per file: every file includes this one for
 * its own entry points (W=1 wants each non-static function declared), and
 * nearly every file uses core.c, so a separate core.h would be included by
 * the same files and hide nothing.
 */
#ifndef _RIG_KMOD_H
#define _RIG_KMOD_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/types.h>

/* The ivshmem BAR that holds the shared memory. */
#define RIG_SHM_BAR	2
/* ivshmem-doorbell: BAR0 registers, BAR1 the MSI-X table. */
#define RIG_REGS_BAR	0
#define RIG_MSIX_BAR	1

/* One bound ivshmem device; owned by ivshmem_pci.c. */
struct rig_dev {
	struct pci_dev *pdev;
	void *shm;			/* kernel mapping of BAR2 */
	resource_size_t shm_phys;	/* BAR2 physical address */
	resource_size_t shm_size;	/* BAR2 length */
	/* Set by doorbell.c; plain ivshmem: doorbell false, RIG_PEER_NONE. */
	bool doorbell;
	u32 own_peer;			/* IVPosition */
};

/* ---- core.c ------------------------------------------------------------- */

/* Counters shown in /proc/rig_kmod/stats. */
struct rig_stats {
	atomic_long_t netlink_requests;
	atomic_long_t netlink_denied;
	atomic_long_t mem_mmaps;
	atomic_long_t mmaps;
	atomic_long_t faults;
	atomic_long_t sigbus;
	atomic_long_t sockopt_sets;
	atomic_long_t sockopt_gets;
	atomic_long_t sockopt_errors;
	atomic_long_t rw_reads;
	atomic_long_t rw_writes;
	atomic_long_t ioctls;
	atomic_long_t ioctl_errors;
	atomic_long_t kfile_writes;
	atomic_long_t kfile_reads;
};

extern struct rig_stats rig_stats;

#define rig_count(field)	atomic_long_inc(&rig_stats.field)

/* A memory region listed in /proc/rig_kmod/regions. */
struct rig_region {
	struct list_head node;
	const char *name;
	const char *kind;		/* "kmalloc", "ivshmem", ... */
	phys_addr_t phys;		/* 0: not physically contiguous */
	size_t size;
};

void rig_region_add(struct rig_region *region);
void rig_region_del(struct rig_region *region);
/* seq_file iteration; the list is locked from start to stop. */
void *rig_regions_start(struct seq_file *m, loff_t *pos);
void *rig_regions_next(struct seq_file *m, void *v, loff_t *pos);
void rig_regions_stop(struct seq_file *m, void *v);
const struct rig_region *rig_regions_entry(void *v);

/* Lines a part adds to /proc/rig_kmod/stats. */
struct rig_stats_source {
	struct list_head node;
	void (*show)(struct seq_file *m);
};

void rig_stats_add(struct rig_stats_source *src);
void rig_stats_del(struct rig_stats_source *src);
void rig_stats_show_sources(struct seq_file *m);

long rig_region_info_reply(unsigned long arg, u64 phys, u64 size, u32 kind);

/* ---- barmap.c ----------------------------------------------------------- */

/*
 * A window of BAR2 that processes map through one device node. Detaching
 * revokes every mapping of it.
 */
struct rig_barmap {
	/* Guards what follows; the fault handler holds it while it inserts. */
	struct mutex lock;
	struct inode *inode;		/* every open file uses its i_mapping */
	phys_addr_t phys;		/* start of the window */
	unsigned long npages;		/* its length; 0: detached */
	pgoff_t pgoff;			/* its file offset, in pages */
	unsigned long gen;		/* attachment; bumped by every detach */
};

int rig_barmap_init(struct rig_barmap *bm);
void rig_barmap_exit(struct rig_barmap *bm);
void rig_barmap_open(struct rig_barmap *bm, struct file *file);
int rig_barmap_mmap(struct rig_barmap *bm, struct vm_area_struct *vma);
void rig_barmap_attach(struct rig_barmap *bm, phys_addr_t phys,
		       resource_size_t size, pgoff_t pgoff);
void rig_barmap_detach(struct rig_barmap *bm);
bool rig_barmap_window(struct rig_barmap *bm, phys_addr_t *phys,
		       resource_size_t *size);

/* ---- procfs.c ----------------------------------------------------------- */

int rig_procfs_init(void);
void rig_procfs_exit(void);
struct proc_dir_entry *rig_proc_dir(void);

/* ---- ivshmem_pci.c ------------------------------------------------------ */

int rig_pci_register(void);
void rig_pci_unregister(void);

/* ---- shm_dev.c ---------------------------------------------------------- */

int rig_shm_dev_create(void);
void rig_shm_dev_destroy(void);
void rig_shm_dev_attach(struct rig_dev *rdev);
void rig_shm_dev_detach(struct rig_dev *rdev);

/* ---- netlink.c (also /dev/rig_mem) -------------------------------------- */

int rig_netlink_init(void);
void rig_netlink_exit(void);
void rig_mem_attach(struct rig_dev *rdev);
void rig_mem_detach(struct rig_dev *rdev);

/* ---- mmap_dev.c --------------------------------------------------------- */

int rig_mmap_dev_init(void);
void rig_mmap_dev_exit(void);

/* ---- fault_dev.c -------------------------------------------------------- */

int rig_fault_dev_init(void);
void rig_fault_dev_exit(void);

/* ---- sockopt.c ---------------------------------------------------------- */

int rig_sockopt_init(void);
void rig_sockopt_exit(void);

/* ---- chardev_rw.c ------------------------------------------------------- */

int rig_rw_dev_init(void);
void rig_rw_dev_exit(void);

/* ---- ioctl.c ------------------------------------------------------------ */

int rig_ioctl_dev_init(void);
void rig_ioctl_dev_exit(void);

/* ---- kfile.c ------------------------------------------------------------ */

int rig_kfile_init(void);
void rig_kfile_exit(void);

/* ---- reserved.c --------------------------------------------------------- */

int rig_reserved_init(void);
void rig_reserved_exit(void);

/* ---- pool.c ------------------------------------------------------------- */

int rig_pool_init(void);
void rig_pool_exit(void);
int rig_pool_attach(struct rig_dev *rdev);
void rig_pool_detach(struct rig_dev *rdev);
void rig_pool_host_irq(void);
u32 rig_pool_host_peer(void);

/* ---- doorbell.c --------------------------------------------------------- */

int rig_doorbell_init(void);
void rig_doorbell_exit(void);
void rig_doorbell_probe(struct rig_dev *rdev);
int rig_doorbell_start(struct rig_dev *rdev);
void rig_doorbell_stop(struct rig_dev *rdev);
void rig_doorbell_remove(struct rig_dev *rdev);

#endif /* _RIG_KMOD_H */
