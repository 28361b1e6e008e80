// SPDX-License-Identifier: GPL-2.0
/*
 * 11. ivshmem-doorbell: interrupts between the guest and the host.
 *
 * QEMU's ivshmem-doorbell is the same PCI device (1af4:1110) as
 * ivshmem-plain, plus BAR0 registers and MSI-X vectors (table in BAR1),
 * served by an ivshmem server that hands out eventfds to its peers (QEMU
 * docs/specs/ivshmem-spec.rst). The module tells the two apart by the
 * MSI-X capability; a plain device stays plain here, and everything else
 * works the same on both.
 *
 * With a doorbell the module allocates every vector (up to
 * RIG_DB_MAX_VECTORS) at probe, and requests their handlers only once the
 * pool is attached (ivshmem_pci.c orders it). An interrupt on
 * RIG_DB_VEC_PRODUCED means the host produced into its ring (uapi
 * header): pool.c counts it in the ring and wakes its waiters, who then
 * queue the new buffers. Every vector is counted, and /dev/rig_doorbell
 * lets userspace
 *
 *   RIG_IOC_DB_INFO  learn its own peer id (IVPosition), the vectors,
 *                    the counts and the host's peer id (the host_peer
 *                    parameter, else what the host wrote into the ring)
 *   RIG_IOC_DB_RING  ring a peer: (peer << 16) | vector into Doorbell
 *   RIG_IOC_DB_WAIT  sleep until a vector's count moves, with a timeout
 *
 * RING and WAIT fail with -EOPNOTSUPP on a plain device, -ENODEV without
 * any.
 */
#include <linux/atomic.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

/*
 * Read-only once loaded: RIG_IOC_DB_INFO reads it without a lock, and a
 * peer id that changed under a running exchange would be wrong anyway.
 */
static int rig_host_peer = -1;
module_param_named(host_peer, rig_host_peer, int, 0444);
MODULE_PARM_DESC(host_peer, "ivshmem peer id of the host (default -1: as the host writes it into the ring)");

/* BAR0 registers (ivshmem-spec.rst). */
#define RIG_REG_INTRMASK	0x00	/* INTx only, unused with MSI-X */
#define RIG_REG_INTRSTATUS	0x04	/* INTx only, unused with MSI-X */
#define RIG_REG_IVPOSITION	0x08	/* our peer id */
#define RIG_REG_DOORBELL	0x0c	/* (peer << 16) | vector */

/* The bound device as this file sees it; set at probe, cleared at remove. */
static struct {
	struct rig_dev *rdev;		/* plain or doorbell; NULL: none */
	void __iomem *regs;		/* BAR0; NULL: plain */
	u32 nvec;			/* MSI-X vectors allocated */
	const char *mode;		/* for /proc/rig_kmod/stats */
} rig_db = { .mode = "no device" };

static DEFINE_MUTEX(rig_db_lock);
/* RIG_IOC_DB_WAIT sleepers. */
static DECLARE_WAIT_QUEUE_HEAD(rig_db_wq);

/* What the interrupt handlers touch: no lock. */
struct rig_db_vec {
	u32 vector;
	char name[24];			/* shown in /proc/interrupts */
};

static struct rig_db_vec rig_db_vecs[RIG_DB_MAX_VECTORS];
static atomic64_t rig_db_irqs[RIG_DB_MAX_VECTORS];
static atomic64_t rig_db_rings;

static irqreturn_t rig_db_irq(int irq, void *data)
{
	struct rig_db_vec *v = data;

	atomic64_inc(&rig_db_irqs[v->vector]);
	if (v->vector == RIG_DB_VEC_PRODUCED)
		rig_pool_host_irq();
	wake_up_interruptible_all(&rig_db_wq);
	return IRQ_HANDLED;
}

/* ---- /dev/rig_doorbell ------------------------------------------------- */

/* 0 when the doorbell can be used, else why not; rig_db_lock held. */
static int rig_db_usable(void)
{
	if (!rig_db.rdev)
		return -ENODEV;
	if (!rig_db.regs)
		return -EOPNOTSUPP;
	return 0;
}

static int rig_db_ring(const struct rig_db_ring *r)
{
	int ret;

	if (r->peer > 0xffff || r->vector > 0xffff)
		return -EINVAL;

	mutex_lock(&rig_db_lock);
	ret = rig_db_usable();
	if (!ret) {
		iowrite32(r->peer << 16 | r->vector,
			  rig_db.regs + RIG_REG_DOORBELL);
		atomic64_inc(&rig_db_rings);
	}
	mutex_unlock(&rig_db_lock);
	return ret;
}

static void rig_db_info(struct rig_db_info *info)
{
	u32 i;

	memset(info, 0, sizeof(*info));
	mutex_lock(&rig_db_lock);
	info->doorbell = !!rig_db.regs;
	info->own_peer = rig_db.rdev ? rig_db.rdev->own_peer : RIG_PEER_NONE;
	info->vectors = rig_db.regs ? rig_db.nvec : 0;
	mutex_unlock(&rig_db_lock);

	info->host_peer = rig_host_peer >= 0 ? rig_host_peer :
			  rig_pool_host_peer();
	for (i = 0; i < RIG_DB_MAX_VECTORS; i++)
		info->irqs[i] = atomic64_read(&rig_db_irqs[i]);
	info->rings = atomic64_read(&rig_db_rings);
}

static int rig_db_wait(struct rig_db_wait *w)
{
	long left;
	int ret;

	if (w->vector >= RIG_DB_MAX_VECTORS)
		return -EINVAL;

	mutex_lock(&rig_db_lock);
	ret = rig_db_usable();
	if (!ret && w->vector >= rig_db.nvec)
		ret = -EINVAL;
	mutex_unlock(&rig_db_lock);
	if (ret)
		return ret;

	left = wait_event_interruptible_timeout(rig_db_wq,
		(u64)atomic64_read(&rig_db_irqs[w->vector]) != w->count ||
		!READ_ONCE(rig_db.regs),
		msecs_to_jiffies(w->timeout_ms));
	if (left < 0)
		return left;	/* -ERESTARTSYS */

	w->count = atomic64_read(&rig_db_irqs[w->vector]);
	return left ? 0 : -ETIMEDOUT;
}

static long rig_db_ioctl(struct file *file, unsigned int cmd,
			 unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	struct rig_db_info info;
	struct rig_db_ring ring;
	struct rig_db_wait wait;
	int ret;

	switch (cmd) {
	case RIG_IOC_DB_INFO:
		rig_db_info(&info);
		return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;

	case RIG_IOC_DB_RING:
		if (copy_from_user(&ring, argp, sizeof(ring)))
			return -EFAULT;
		return rig_db_ring(&ring);

	case RIG_IOC_DB_WAIT:
		if (copy_from_user(&wait, argp, sizeof(wait)))
			return -EFAULT;
		ret = rig_db_wait(&wait);
		/* The count goes back on a timeout too. */
		if ((!ret || ret == -ETIMEDOUT) &&
		    copy_to_user(argp, &wait, sizeof(wait)))
			return -EFAULT;
		return ret;

	default:
		return -ENOTTY;
	}
}

RIG_DEFINE_IOCTL(rig_db)

static int rig_db_open(struct inode *inode, struct file *file)
{
	return nonseekable_open(inode, file);
}

static const struct file_operations rig_db_fops = {
	.owner	= THIS_MODULE,
	.open	= rig_db_open,
	.llseek	= RIG_NO_LLSEEK,
	RIG_FOPS_IOCTL(rig_db),
};

static struct miscdevice rig_db_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_DB_DEV_NAME,
	.fops	= &rig_db_fops,
	.mode	= 0600,
};

/* ---- probe, start, stop, remove: called by ivshmem_pci.c --------------- */

/* Maps BAR0 and allocates the vectors; on failure nothing is kept. */
static int rig_db_setup(struct pci_dev *pdev, void __iomem **regsp,
			u32 *nvecp)
{
	void __iomem *regs;
	int nvec, ret;

	ret = pci_request_region(pdev, RIG_REGS_BAR, KBUILD_MODNAME);
	if (ret)
		return ret;

	regs = pci_iomap(pdev, RIG_REGS_BAR, 0);
	if (!regs) {
		ret = -ENOMEM;
		goto err_release_region;
	}

	nvec = pci_msix_vec_count(pdev);
	if (nvec <= 0) {
		ret = nvec ? nvec : -ENODEV;
		goto err_unmap;
	}
	nvec = min(nvec, RIG_DB_MAX_VECTORS);

	/* MSI-X messages are memory writes by the device. */
	pci_set_master(pdev);
	ret = pci_alloc_irq_vectors(pdev, nvec, nvec, PCI_IRQ_MSIX);
	if (ret < 0)
		goto err_clear_master;

	*regsp = regs;
	*nvecp = nvec;
	return 0;

err_clear_master:
	pci_clear_master(pdev);
err_unmap:
	pci_iounmap(pdev, regs);
err_release_region:
	pci_release_region(pdev, RIG_REGS_BAR);
	return ret;
}

/*
 * Finds out what rdev is: sets rdev->doorbell and rdev->own_peer (the pool
 * tells the host our peer id). No handler runs yet. A doorbell that cannot
 * be set up leaves the device plain.
 */
void rig_doorbell_probe(struct rig_dev *rdev)
{
	struct pci_dev *pdev = rdev->pdev;
	const char *mode = "plain";
	void __iomem *regs = NULL;
	u32 nvec = 0;
	int ret;

	rdev->doorbell = false;
	rdev->own_peer = RIG_PEER_NONE;

	/* ivshmem-plain has no MSI-X capability and no BAR1. */
	if (pdev->msix_cap && pci_resource_len(pdev, RIG_MSIX_BAR)) {
		ret = rig_db_setup(pdev, &regs, &nvec);
		if (ret) {
			dev_warn(&pdev->dev, "doorbell setup failed (%d), using the shared memory only\n",
				 ret);
			mode = "plain: doorbell setup failed";
		} else {
			rdev->doorbell = true;
			rdev->own_peer = ioread32(regs + RIG_REG_IVPOSITION);
			mode = "doorbell";
			dev_info(&pdev->dev, "doorbell: peer id %u, %u MSI-X vectors\n",
				 rdev->own_peer, nvec);
		}
	}

	mutex_lock(&rig_db_lock);
	rig_db.rdev = rdev;
	rig_db.regs = regs;
	rig_db.nvec = nvec;
	rig_db.mode = mode;
	mutex_unlock(&rig_db_lock);
}

static void rig_db_free_irqs(struct pci_dev *pdev, u32 count)
{
	while (count--)
		free_irq(pci_irq_vector(pdev, count), &rig_db_vecs[count]);
}

/*
 * Requests the handlers. The pool is attached by now, so the handler of
 * RIG_DB_VEC_PRODUCED may count into its ring. An interrupt the host sent
 * earlier is not lost: MSI-X keeps it pending while the vector is masked,
 * and request_irq() unmasks it.
 */
int rig_doorbell_start(struct rig_dev *rdev)
{
	struct pci_dev *pdev = rdev->pdev;
	u32 i, nvec;
	int ret;

	if (!rdev->doorbell)
		return 0;

	mutex_lock(&rig_db_lock);
	nvec = rig_db.nvec;
	mutex_unlock(&rig_db_lock);

	for (i = 0; i < RIG_DB_MAX_VECTORS; i++)
		atomic64_set(&rig_db_irqs[i], 0);

	for (i = 0; i < nvec; i++) {
		struct rig_db_vec *v = &rig_db_vecs[i];

		v->vector = i;
		snprintf(v->name, sizeof(v->name), "%s-db%u", KBUILD_MODNAME, i);
		ret = request_irq(pci_irq_vector(pdev, i), rig_db_irq, 0,
				  v->name, v);
		if (ret) {
			rig_db_free_irqs(pdev, i);
			return ret;
		}
	}
	return 0;
}

/* Frees the handlers; none runs once this returns (free_irq() waits). */
void rig_doorbell_stop(struct rig_dev *rdev)
{
	u32 nvec;

	if (!rdev->doorbell)
		return;

	mutex_lock(&rig_db_lock);
	nvec = rig_db.nvec;
	mutex_unlock(&rig_db_lock);
	rig_db_free_irqs(rdev->pdev, nvec);
}

/* Undoes rig_doorbell_probe(). */
void rig_doorbell_remove(struct rig_dev *rdev)
{
	struct pci_dev *pdev = rdev->pdev;
	void __iomem *regs;

	mutex_lock(&rig_db_lock);
	regs = rig_db.regs;
	rig_db.rdev = NULL;
	rig_db.regs = NULL;
	rig_db.nvec = 0;
	rig_db.mode = "no device";
	mutex_unlock(&rig_db_lock);
	/* RIG_IOC_DB_WAIT sleepers see the doorbell gone. */
	wake_up_interruptible_all(&rig_db_wq);

	if (!regs)
		return;
	pci_free_irq_vectors(pdev);
	pci_clear_master(pdev);
	pci_iounmap(pdev, regs);
	pci_release_region(pdev, RIG_REGS_BAR);
	rdev->doorbell = false;
	rdev->own_peer = RIG_PEER_NONE;
}

/* ---- its lines in /proc/rig_kmod/stats --------------------------------- */

static void rig_doorbell_show(struct seq_file *m)
{
	u32 i;

	mutex_lock(&rig_db_lock);
	seq_printf(m, "%-16s %s\n", "doorbell", rig_db.mode);
	if (rig_db.regs) {
		seq_printf(m, "%-16s %u\n", "doorbell_peer",
			   rig_db.rdev->own_peer);
		seq_printf(m, "%-16s %u\n", "doorbell_vectors", rig_db.nvec);
		seq_printf(m, "%-16s", "doorbell_irqs");
		for (i = 0; i < rig_db.nvec; i++)
			seq_printf(m, " %lld",
				   (long long)atomic64_read(&rig_db_irqs[i]));
		seq_putc(m, '\n');
		seq_printf(m, "%-16s %lld\n", "doorbell_rings",
			   (long long)atomic64_read(&rig_db_rings));
	}
	mutex_unlock(&rig_db_lock);
}

static struct rig_stats_source rig_db_stats = { .show = rig_doorbell_show };

/* ---- setup ------------------------------------------------------------- */

int rig_doorbell_init(void)
{
	int ret;

	ret = misc_register(&rig_db_dev);
	if (ret)
		return ret;
	rig_stats_add(&rig_db_stats);
	return 0;
}

void rig_doorbell_exit(void)
{
	rig_stats_del(&rig_db_stats);
	misc_deregister(&rig_db_dev);
}
