// SPDX-License-Identifier: GPL-2.0
/*
 * PCI driver for QEMU's ivshmem device, plain or doorbell (same id).
 *
 * Probe maps BAR2, the memory shared with the host, and writes a
 * struct rig_shm_header at RIG_SHM_HEADER_OFFSET so the host can tell the
 * module ran, on which kernel, and how often it probed. Then the device
 * is handed to the parts that use it, in this order:
 *
 *   doorbell.c  BAR0 and the MSI-X vectors, when the device has them
 *               (ivshmem-doorbell); this gives our peer id
 *   pool.c      the buffer pool and the host's ring move into BAR2
 *   doorbell.c  the interrupt handlers, which count into the pool's ring
 *   shm_dev.c, netlink.c  /dev/rig_shm and /dev/rig_mem map BAR2
 *
 * Remove marks the header RIG_STATE_REMOVED and undoes probe in reverse.
 * The parts get the device from here and never call back.
 *
 * Only one device is supported: /dev/rig_shm exposes a single BAR.
 */
#include <linux/atomic.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/utsname.h>

#include "uapi/rig_kmod.h"

#include "rig_kmod.h"

/* Set while a device is bound; a second one is refused. */
static atomic_t rig_pci_claimed = ATOMIC_INIT(0);

/* BAR2 in /proc/rig_kmod/regions while a device is bound. */
static struct rig_region rig_pci_region = {
	.name = "shm",
	.kind = "ivshmem",
};

static struct rig_shm_header *rig_header(struct rig_dev *rdev)
{
	return rdev->shm + RIG_SHM_HEADER_OFFSET;
}

static void rig_header_write_probed(struct rig_dev *rdev)
{
	struct rig_shm_header *hdr = rig_header(rdev);
	u32 probe_count = 1;

	/* A header left by an earlier probe (reload, rebind) keeps counting. */
	if (READ_ONCE(hdr->magic) == RIG_SHM_MAGIC)
		probe_count = READ_ONCE(hdr->probe_count) + 1;

	WRITE_ONCE(hdr->magic, RIG_SHM_MAGIC);
	WRITE_ONCE(hdr->abi_version, RIG_ABI_VERSION);
	WRITE_ONCE(hdr->size, rdev->shm_size);
	WRITE_ONCE(hdr->probe_count, probe_count);
	WRITE_ONCE(hdr->bar_phys, rdev->shm_phys);
	strscpy_pad((char *)hdr->kernel_release, utsname()->release,
		    sizeof(hdr->kernel_release));

	/* The host may be polling: state goes last, after everything else. */
	wmb();
	WRITE_ONCE(hdr->state, RIG_STATE_PROBED);
}

static void rig_header_write_removed(struct rig_dev *rdev)
{
	WRITE_ONCE(rig_header(rdev)->state, RIG_STATE_REMOVED);
}

static int rig_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct rig_dev *rdev;
	int ret;

	if (atomic_cmpxchg(&rig_pci_claimed, 0, 1)) {
		dev_warn(&pdev->dev, "only one ivshmem device is supported, ignoring this one\n");
		return -EBUSY;
	}

	rdev = kzalloc(sizeof(*rdev), GFP_KERNEL);
	if (!rdev) {
		ret = -ENOMEM;
		goto err_unclaim;
	}
	rdev->pdev = pdev;

	/* Memory decoding must be on: off, BAR reads give 0 and writes vanish. */
	ret = pci_enable_device(pdev);
	if (ret) {
		dev_err(&pdev->dev, "cannot enable device: %d\n", ret);
		goto err_free_rdev;
	}

	rdev->shm_phys = pci_resource_start(pdev, RIG_SHM_BAR);
	rdev->shm_size = pci_resource_len(pdev, RIG_SHM_BAR);
	if (!(pci_resource_flags(pdev, RIG_SHM_BAR) & IORESOURCE_MEM) ||
	    rdev->shm_size < RIG_SHM_MIN_SIZE) {
		dev_err(&pdev->dev, "BAR%d is not a memory BAR of at least %#x bytes\n",
			RIG_SHM_BAR, RIG_SHM_MIN_SIZE);
		ret = -ENODEV;
		goto err_disable_device;
	}

	/* BAR0 (registers) is doorbell.c's, and only with a doorbell. */
	ret = pci_request_region(pdev, RIG_SHM_BAR, KBUILD_MODNAME);
	if (ret) {
		dev_err(&pdev->dev, "cannot claim BAR%d: %d\n", RIG_SHM_BAR, ret);
		goto err_disable_device;
	}

	/*
	 * The BAR is ordinary RAM on the host side (a shared file mapping), so
	 * map it write-back like RAM: the host reads it through its cache
	 * anyway, and /dev/rig_shm maps it write-back to userspace too, which
	 * keeps the x86 PAT memory type of both mappings the same.
	 */
	rdev->shm = memremap(rdev->shm_phys, rdev->shm_size, MEMREMAP_WB);
	if (!rdev->shm) {
		dev_err(&pdev->dev, "cannot map BAR%d\n", RIG_SHM_BAR);
		ret = -ENOMEM;
		goto err_release_region;
	}

	rig_header_write_probed(rdev);
	pci_set_drvdata(pdev, rdev);

	/* No handlers yet: the pool needs the peer id, the handlers the pool. */
	rig_doorbell_probe(rdev);

	ret = rig_pool_attach(rdev);
	if (ret)
		goto err_doorbell_remove;

	ret = rig_doorbell_start(rdev);
	if (ret) {
		dev_err(&pdev->dev, "cannot request the doorbell interrupts: %d\n",
			ret);
		goto err_pool_detach;
	}

	rig_shm_dev_attach(rdev);
	rig_mem_attach(rdev);
	rig_pci_region.phys = rdev->shm_phys;
	rig_pci_region.size = rdev->shm_size;
	rig_region_add(&rig_pci_region);

	dev_info(&pdev->dev, "shared memory %pR, %s\n",
		 &pdev->resource[RIG_SHM_BAR],
		 rdev->doorbell ? "doorbell" : "plain (no doorbell)");
	return 0;

err_pool_detach:
	rig_pool_detach(rdev);
err_doorbell_remove:
	rig_doorbell_remove(rdev);
	rig_header_write_removed(rdev);
	memunmap(rdev->shm);
err_release_region:
	pci_release_region(pdev, RIG_SHM_BAR);
err_disable_device:
	pci_disable_device(pdev);
err_free_rdev:
	kfree(rdev);
err_unclaim:
	atomic_set(&rig_pci_claimed, 0);
	return ret;
}

static void rig_pci_remove(struct pci_dev *pdev)
{
	struct rig_dev *rdev = pci_get_drvdata(pdev);

	/*
	 * First the parts that let processes map BAR2: they revoke every
	 * mapping (barmap.c), so no page table points at the BAR once it is
	 * released below; a later touch gets SIGBUS. The files stay open and
	 * keep the module loaded; their operations fail with -ENODEV.
	 */
	rig_region_del(&rig_pci_region);
	rig_mem_detach(rdev);
	rig_shm_dev_detach(rdev);
	rig_doorbell_stop(rdev);
	rig_pool_detach(rdev);
	rig_doorbell_remove(rdev);

	rig_header_write_removed(rdev);
	memunmap(rdev->shm);
	pci_release_region(pdev, RIG_SHM_BAR);
	pci_disable_device(pdev);
	kfree(rdev);
	atomic_set(&rig_pci_claimed, 0);
}

static const struct pci_device_id rig_pci_ids[] = {
	{ PCI_DEVICE(RIG_IVSHMEM_VENDOR, RIG_IVSHMEM_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, rig_pci_ids);

static struct pci_driver rig_pci_driver = {
	.name		= KBUILD_MODNAME,
	.id_table	= rig_pci_ids,
	.probe		= rig_pci_probe,
	.remove		= rig_pci_remove,
};

int rig_pci_register(void)
{
	return pci_register_driver(&rig_pci_driver);
}

void rig_pci_unregister(void)
{
	pci_unregister_driver(&rig_pci_driver);
}
