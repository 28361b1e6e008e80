/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations shared by the files of the module. Not an ABI: what
 * userspace and the host see is in the uapi header.
 */
#ifndef _RIG_KMOD_H
#define _RIG_KMOD_H

#include <linux/pci.h>
#include <linux/types.h>

/* The ivshmem BAR that holds the shared memory. */
#define RIG_SHM_BAR	2

/* One bound ivshmem device; owned by ivshmem_pci.c. */
struct rig_dev {
	struct pci_dev *pdev;
	void *shm;			/* kernel mapping of BAR2 */
	resource_size_t shm_phys;	/* BAR2 physical address */
	resource_size_t shm_size;	/* BAR2 length */
};

/* ivshmem_pci.c */
int rig_pci_register(void);
void rig_pci_unregister(void);

/* shm_dev.c */
int rig_shm_dev_create(void);
void rig_shm_dev_destroy(void);
void rig_shm_dev_attach(struct rig_dev *rdev);
void rig_shm_dev_detach(struct rig_dev *rdev);

#endif /* _RIG_KMOD_H */
