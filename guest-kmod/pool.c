// SPDX-License-Identifier: GPL-2.0
/*
 * 10. Buffer pool, producer and consumer (and the consumer side of 11).
 *
 * RIG_POOL_NBUF buffers of RIG_POOL_BUF_SIZE bytes are carved out of the
 * ivshmem region at RIG_POOL_OFFSET, so the host sees every byte. Each
 * starts with a struct rig_pool_buf; the payload follows.
 *
 * Buffers 0 .. RIG_POOL_KBUFS-1 belong to a kernel thread, the producer:
 * after RIG_IOC_POOL_START it takes free buffers in FIFO order, fills
 * them (payload byte i = rig_pattern_byte(seed + seq, i)) and queues
 * them. The other buffers are the slots of the host's ring (struct
 * rig_hring, protocol in the uapi header): whenever the queue is looked
 * at, entries the host published are queued too. ivshmem-doorbell
 * interrupts (doorbell.c) are counted in the ring and wake the waiters,
 * who then look.
 *
 * Userspace waits with poll()/select() or RIG_IOC_POOL_TAKE_WAIT
 * (sleeps, interruptible by a signal), takes a buffer with
 * RIG_IOC_POOL_TAKE (-EAGAIN when none is ready), reads it in place
 * through its mmap() of /dev/rig_pool (buffer i at offset
 * i * RIG_POOL_BUF_SIZE) and gives it back with RIG_IOC_POOL_RELEASE.
 * Buffers a file still holds when it is closed are given back then.
 * Detaching revokes the mappings (barmap.c): a later touch gets SIGBUS.
 *
 * The pool's state is mirrored into struct rig_pool_status for the host.
 * Without a bound ivshmem device every operation fails with -ENODEV.
 */
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

/* Where a buffer is. */
enum rig_buf_state {
	RIG_BUF_FREE,		/* kernel: on the free list; host: empty slot */
	RIG_BUF_FILLING,	/* the producer thread is writing it */
	RIG_BUF_READY,		/* queued for userspace */
	RIG_BUF_TAKEN,		/* a file holds it */
	RIG_BUF_RELEASED,	/* host slot given back, cons not past it yet */
};

/* A FIFO of buffer indices. */
struct rig_fifo {
	u32 slot[RIG_POOL_NBUF];
	u32 head;
	u32 count;
};

static void rig_fifo_push(struct rig_fifo *f, u32 index)
{
	f->slot[(f->head + f->count) % RIG_POOL_NBUF] = index;
	f->count++;
}

static u32 rig_fifo_pop(struct rig_fifo *f)
{
	u32 index = f->slot[f->head];

	f->head = (f->head + 1) % RIG_POOL_NBUF;
	f->count--;
	return index;
}

struct rig_pool {
	/* Set and cleared by attach/detach, under rig_pool_lock. */
	void *bufs;			/* NULL: no device */
	phys_addr_t bufs_phys;
	struct rig_pool_status *status;
	struct rig_hring *hring;
	struct task_struct *thread;

	/* Under rig_pool_lock. */
	struct rig_fifo free;		/* kernel buffers */
	struct rig_fifo ready;		/* both kinds, in order of arrival */
	u8 state[RIG_POOL_NBUF];	/* enum rig_buf_state */
	struct file *owner[RIG_POOL_NBUF];
	struct rig_pool_desc desc[RIG_POOL_NBUF];
	struct rig_pool_start job;
	u32 pending;			/* kernel buffers still to produce */
	u32 taken;
	u64 seq;			/* last kernel seq handed out */
	u64 produced;
	u64 consumed;
	u64 host_queued;
	u64 host_consumed;
	u32 host_next;			/* ring position to look at next */
	u32 host_cons;			/* oldest ring position not given back */
	u32 host_overrun;		/* prod at the last overrun seen */

	/* Interrupts on RIG_DB_VEC_PRODUCED; mirrored into hring->irqs. */
	atomic_t host_irqs;
};

static struct rig_pool rig_pool;
static DEFINE_SPINLOCK(rig_pool_lock);
/* The buffers as userspace maps them; revoked on detach. */
static struct rig_barmap rig_pool_map;
/* Userspace waiting for a ready buffer. */
static DECLARE_WAIT_QUEUE_HEAD(rig_pool_read_wq);
/* The producer waiting for work and a free buffer. */
static DECLARE_WAIT_QUEUE_HEAD(rig_pool_prod_wq);

static struct rig_region rig_pool_region = {
	.name = "pool",
	.kind = "ivshmem",
	.size = RIG_POOL_NBUF * RIG_POOL_BUF_SIZE,
};

static struct rig_pool_buf *rig_pool_buf(struct rig_pool *p, u32 index)
{
	return p->bufs + (size_t)index * RIG_POOL_BUF_SIZE;
}

/* Mirrors the counters into the shared status; under the lock. */
static void rig_pool_publish(struct rig_pool *p)
{
	struct rig_pool_status *s = p->status;

	WRITE_ONCE(s->produced, p->produced);
	WRITE_ONCE(s->consumed, p->consumed);
	WRITE_ONCE(s->host_consumed, p->host_consumed);
	WRITE_ONCE(s->free, p->free.count);
	WRITE_ONCE(s->ready, p->ready.count);
	WRITE_ONCE(s->last_seq, p->seq);
}

/* ---- the host ring ---------------------------------------------------- */

/* Moves cons past the host slots given back, in ring order; locked. */
static void rig_pool_advance_cons(struct rig_pool *p)
{
	u32 old = p->host_cons;

	while (p->host_cons != p->host_next) {
		u32 index = RIG_HRING_FIRST_BUF +
			    p->host_cons % RIG_HRING_SLOTS;

		if (p->state[index] != RIG_BUF_RELEASED)
			break;
		p->state[index] = RIG_BUF_FREE;
		p->host_cons++;
	}

	if (p->host_cons == old)
		return;
	/*
	 * The host may reuse a slot once it sees cons past it: release
	 * orders our last reads of the slot before the new cons.
	 */
	smp_store_release(&p->hring->cons, p->host_cons);
}

static void rig_pool_host_bad(struct rig_pool *p)
{
	WRITE_ONCE(p->hring->bad, READ_ONCE(p->hring->bad) + 1);
}

/*
 * Queues what the host published since the last look; locked. prod is
 * the host's word: it is checked before it bounds anything, so this looks
 * at no more than RIG_HRING_SLOTS entries whatever the host wrote.
 */
static void rig_pool_import_host(struct rig_pool *p)
{
	/* Pairs with the host's store-release of prod. */
	u32 prod = smp_load_acquire(&p->hring->prod);
	/* Free-running: both differences are right across a wrap. */
	u32 outstanding = prod - p->host_cons;
	u32 seen = p->host_next - p->host_cons;

	/*
	 * More entries than slots (the host wrote one we have not given
	 * back), or prod moved back behind what we already took: refuse
	 * them all, counted once per such prod. Refused entries are given
	 * straight back below, which moves host_cons, so without this bound
	 * a far-off prod and bad headers would keep this loop going for up
	 * to 2^32 entries with the lock held.
	 */
	if (outstanding > RIG_HRING_SLOTS || outstanding < seen) {
		if (p->host_overrun != prod)
			rig_pool_host_bad(p);
		p->host_overrun = prod;
		return;
	}

	while (p->host_next != prod) {
		u32 pos = p->host_next;
		u32 index = RIG_HRING_FIRST_BUF + pos % RIG_HRING_SLOTS;
		struct rig_pool_buf *hdr = rig_pool_buf(p, index);
		struct rig_pool_desc d = {
			.index	= index,
			.source	= READ_ONCE(hdr->source),
			.seq	= READ_ONCE(hdr->seq),
			.len	= READ_ONCE(hdr->len),
			.seed	= READ_ONCE(hdr->seed),
		};

		p->host_next++;
		if (READ_ONCE(hdr->magic) != RIG_POOL_BUF_MAGIC ||
		    READ_ONCE(hdr->index) != index ||
		    d.source != RIG_POOL_SRC_HOST || (u32)d.seq != pos + 1 ||
		    d.len > RIG_POOL_PAYLOAD_MAX) {
			/* Refused: give the slot straight back. */
			rig_pool_host_bad(p);
			p->state[index] = RIG_BUF_RELEASED;
			rig_pool_advance_cons(p);
			continue;
		}

		p->desc[index] = d;
		p->state[index] = RIG_BUF_READY;
		rig_fifo_push(&p->ready, index);
		p->host_queued++;
	}
}

/* ---- the producer thread ---------------------------------------------- */

static void rig_pool_fill(struct rig_pool *p, u32 index, u64 seq, u32 len,
			  u32 seed)
{
	struct rig_pool_buf *hdr = rig_pool_buf(p, index);
	u8 *payload = (u8 *)hdr + RIG_POOL_HDR_SIZE;
	u32 i;

	for (i = 0; i < len; i++)
		payload[i] = rig_pattern_byte(seed, i);

	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = RIG_POOL_BUF_MAGIC;
	hdr->source = RIG_POOL_SRC_KERNEL;
	hdr->seq = seq;
	hdr->len = len;
	hdr->seed = seed;
	hdr->index = index;
}

/*
 * The pause between two buffers, cut short by kthread_stop(): remove
 * waits for this thread, and an interval may be up to a second.
 */
static void rig_pool_pause(u32 us)
{
	ktime_t t = (ktime_t)us * NSEC_PER_USEC;

	/* Set before the test: kthread_stop() sets the flag, then wakes us. */
	set_current_state(TASK_INTERRUPTIBLE);
	if (!kthread_should_stop())
		schedule_hrtimeout(&t, HRTIMER_MODE_REL);
	__set_current_state(TASK_RUNNING);
}

static bool rig_pool_can_produce(void)
{
	bool can;

	spin_lock(&rig_pool_lock);
	can = rig_pool.pending && rig_pool.free.count;
	spin_unlock(&rig_pool_lock);
	return can;
}

static int rig_pool_thread(void *unused)
{
	struct rig_pool *p = &rig_pool;

	while (!kthread_should_stop()) {
		struct rig_pool_start job;
		u32 index, seed;
		u64 seq;

		/* Kernel threads get no signals: this ends by the condition. */
		wait_event_interruptible(rig_pool_prod_wq,
					 kthread_should_stop() ||
					 rig_pool_can_produce());

		spin_lock(&rig_pool_lock);
		if (kthread_should_stop() || !p->pending || !p->free.count) {
			spin_unlock(&rig_pool_lock);
			continue;
		}
		index = rig_fifo_pop(&p->free);
		p->state[index] = RIG_BUF_FILLING;
		p->pending--;
		seq = ++p->seq;
		job = p->job;
		spin_unlock(&rig_pool_lock);

		/* The buffer is ours alone while FILLING: no lock needed. */
		seed = job.seed + (u32)seq;
		rig_pool_fill(p, index, seq, job.len, seed);

		spin_lock(&rig_pool_lock);
		p->desc[index] = (struct rig_pool_desc) {
			.index	= index,
			.source	= RIG_POOL_SRC_KERNEL,
			.seq	= seq,
			.len	= job.len,
			.seed	= seed,
		};
		p->state[index] = RIG_BUF_READY;
		rig_fifo_push(&p->ready, index);
		p->produced++;
		rig_pool_publish(p);
		spin_unlock(&rig_pool_lock);
		wake_up_interruptible(&rig_pool_read_wq);

		if (job.interval_us)
			rig_pool_pause(job.interval_us);
	}
	return 0;
}

/* ---- taking and giving back ------------------------------------------- */

static int rig_pool_try_take(struct file *file, struct rig_pool_desc *desc)
{
	struct rig_pool *p = &rig_pool;
	int ret = 0;
	u32 index;

	spin_lock(&rig_pool_lock);
	if (!p->bufs) {
		ret = -ENODEV;
		goto out_unlock;
	}
	rig_pool_import_host(p);
	if (!p->ready.count) {
		ret = -EAGAIN;
		goto out_unlock;
	}

	index = rig_fifo_pop(&p->ready);
	p->state[index] = RIG_BUF_TAKEN;
	p->owner[index] = file;
	p->taken++;
	*desc = p->desc[index];
	rig_pool_publish(p);

out_unlock:
	spin_unlock(&rig_pool_lock);
	return ret;
}

/* The wait condition of RIG_IOC_POOL_TAKE_WAIT: taken, or an error. */
static bool rig_pool_took(struct file *file, struct rig_pool_desc *desc,
			  int *ret)
{
	*ret = rig_pool_try_take(file, desc);
	return *ret != -EAGAIN;
}

/* Gives buffer index back for file; locked. Sets *wake if one is free. */
static int rig_pool_put_locked(struct rig_pool *p, struct file *file,
			       u32 index, bool *wake)
{
	if (index >= RIG_POOL_NBUF || p->state[index] != RIG_BUF_TAKEN ||
	    p->owner[index] != file)
		return -EINVAL;

	p->owner[index] = NULL;
	p->taken--;
	if (index < RIG_POOL_KBUFS) {
		p->state[index] = RIG_BUF_FREE;
		rig_fifo_push(&p->free, index);
		p->consumed++;
		*wake = true;
	} else {
		p->state[index] = RIG_BUF_RELEASED;
		p->host_consumed++;
		rig_pool_advance_cons(p);
	}
	rig_pool_publish(p);
	return 0;
}

static int rig_pool_put(struct file *file, u32 index)
{
	struct rig_pool *p = &rig_pool;
	bool wake = false;
	int ret;

	spin_lock(&rig_pool_lock);
	ret = p->bufs ? rig_pool_put_locked(p, file, index, &wake) : -ENODEV;
	spin_unlock(&rig_pool_lock);

	if (wake)
		wake_up_interruptible(&rig_pool_prod_wq);
	return ret;
}

/* ---- the device ------------------------------------------------------- */

static int rig_pool_open(struct inode *inode, struct file *file)
{
	rig_barmap_open(&rig_pool_map, file);
	return nonseekable_open(inode, file);
}

/* Whatever the file still holds goes back to the pool. */
static int rig_pool_release(struct inode *inode, struct file *file)
{
	struct rig_pool *p = &rig_pool;
	bool wake = false;
	u32 i;

	spin_lock(&rig_pool_lock);
	if (p->bufs) {
		for (i = 0; i < RIG_POOL_NBUF; i++)
			if (p->owner[i] == file)
				rig_pool_put_locked(p, file, i, &wake);
	}
	spin_unlock(&rig_pool_lock);

	if (wake)
		wake_up_interruptible(&rig_pool_prod_wq);
	return 0;
}

static __poll_t rig_pool_poll(struct file *file, poll_table *wait)
{
	struct rig_pool *p = &rig_pool;
	__poll_t mask = 0;

	poll_wait(file, &rig_pool_read_wq, wait);

	spin_lock(&rig_pool_lock);
	if (!p->bufs) {
		mask = EPOLLERR | EPOLLHUP;
	} else {
		rig_pool_import_host(p);
		if (p->ready.count)
			mask = EPOLLIN | EPOLLRDNORM;
	}
	spin_unlock(&rig_pool_lock);

	return mask;
}

static int rig_pool_mmap(struct file *file, struct vm_area_struct *vma)
{
	int ret;

	ret = rig_barmap_mmap(&rig_pool_map, vma);
	if (!ret)
		rig_count(mmaps);
	return ret;
}

/* A copy of the pool's state; changes nothing. Locked, attached. */
static void rig_pool_snapshot(struct rig_pool *p, struct rig_pool_info *info)
{
	memset(info, 0, sizeof(*info));
	info->nbuf = RIG_POOL_NBUF;
	info->buf_size = RIG_POOL_BUF_SIZE;
	info->kbufs = RIG_POOL_KBUFS;
	info->free = p->free.count;
	info->ready = p->ready.count;
	info->taken = p->taken;
	info->produced = p->produced;
	info->consumed = p->consumed;
	info->host_queued = p->host_queued;
	info->host_consumed = p->host_consumed;
	info->pending = p->pending;
}

/* RIG_IOC_POOL_INFO: what the host published is queued first. */
static int rig_pool_info(struct rig_pool_info *info)
{
	struct rig_pool *p = &rig_pool;
	int ret = 0;

	spin_lock(&rig_pool_lock);
	if (p->bufs) {
		rig_pool_import_host(p);
		rig_pool_snapshot(p, info);
	} else {
		ret = -ENODEV;
	}
	spin_unlock(&rig_pool_lock);
	return ret;
}

static int rig_pool_start(const struct rig_pool_start *start)
{
	struct rig_pool *p = &rig_pool;
	int ret = 0;

	if (!start->count || !start->len ||
	    start->len > RIG_POOL_PAYLOAD_MAX ||
	    start->interval_us > USEC_PER_SEC)
		return -EINVAL;

	spin_lock(&rig_pool_lock);
	if (!p->bufs) {
		ret = -ENODEV;
	} else if (p->pending) {
		ret = -EBUSY;
	} else {
		p->job = *start;
		p->pending = start->count;
	}
	spin_unlock(&rig_pool_lock);

	if (!ret)
		wake_up_interruptible(&rig_pool_prod_wq);
	return ret;
}

static long rig_pool_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	struct rig_pool_release rel;
	struct rig_pool_start start;
	struct rig_pool_desc desc;
	struct rig_pool_info info;
	int taken = -EAGAIN;
	int ret;

	switch (cmd) {
	case RIG_IOC_POOL_INFO:
		ret = rig_pool_info(&info);
		if (!ret && copy_to_user(argp, &info, sizeof(info)))
			ret = -EFAULT;
		return ret;

	case RIG_IOC_POOL_START:
		if (copy_from_user(&start, argp, sizeof(start)))
			return -EFAULT;
		return rig_pool_start(&start);

	case RIG_IOC_POOL_TAKE:
		taken = rig_pool_try_take(file, &desc);
		break;

	case RIG_IOC_POOL_TAKE_WAIT:
		/* -ERESTARTSYS on a signal: EINTR unless SA_RESTART. */
		ret = wait_event_interruptible(rig_pool_read_wq,
					       rig_pool_took(file, &desc, &taken));
		if (ret)
			return ret;
		break;

	case RIG_IOC_POOL_RELEASE:
		if (copy_from_user(&rel, argp, sizeof(rel)))
			return -EFAULT;
		if (rel.reserved)
			return -EINVAL;
		return rig_pool_put(file, rel.index);

	default:
		return -ENOTTY;
	}

	if (taken)
		return taken;
	if (copy_to_user(argp, &desc, sizeof(desc))) {
		/* Nobody learnt the index: give it back. */
		rig_pool_put(file, desc.index);
		return -EFAULT;
	}
	return 0;
}

RIG_DEFINE_IOCTL(rig_pool)

static const struct file_operations rig_pool_fops = {
	.owner		= THIS_MODULE,
	.open		= rig_pool_open,
	.release	= rig_pool_release,
	.llseek		= RIG_NO_LLSEEK,
	.poll		= rig_pool_poll,
	.mmap		= rig_pool_mmap,
	RIG_FOPS_IOCTL(rig_pool),
};

static struct miscdevice rig_pool_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_POOL_DEV_NAME,
	.fops	= &rig_pool_fops,
	.mode	= 0600,
};

/* ---- attach to the device --------------------------------------------- */

/* Resets the pool onto rdev's BAR2; both locks held. */
static void rig_pool_reset(struct rig_pool *p, struct rig_dev *rdev)
{
	struct rig_hring *ring = rdev->shm + RIG_HRING_OFFSET;
	struct rig_pool_status *s = rdev->shm + RIG_POOL_STATUS_OFFSET;
	u32 i;

	memset(&p->free, 0, sizeof(p->free));
	memset(&p->ready, 0, sizeof(p->ready));
	memset(p->state, RIG_BUF_FREE, sizeof(p->state));
	memset(p->owner, 0, sizeof(p->owner));
	memset(p->desc, 0, sizeof(p->desc));
	memset(&p->job, 0, sizeof(p->job));
	p->pending = 0;
	p->taken = 0;
	p->seq = 0;
	p->produced = 0;
	p->consumed = 0;
	p->host_queued = 0;
	p->host_consumed = 0;

	p->bufs = rdev->shm + RIG_POOL_OFFSET;
	p->bufs_phys = rdev->shm_phys + RIG_POOL_OFFSET;
	p->status = s;
	p->hring = ring;
	for (i = 0; i < RIG_POOL_KBUFS; i++)
		rig_fifo_push(&p->free, i);

	/* Whatever the host produced before now is dropped. */
	p->host_next = READ_ONCE(ring->prod);
	p->host_cons = p->host_next;
	p->host_overrun = p->host_next - 1;
	WRITE_ONCE(ring->cons, p->host_cons);
	WRITE_ONCE(ring->guest_peer, rdev->own_peer);
	WRITE_ONCE(ring->guest_magic, RIG_HRING_MAGIC);
	WRITE_ONCE(ring->nslots, RIG_HRING_SLOTS);
	WRITE_ONCE(ring->first_buf, RIG_HRING_FIRST_BUF);
	/* No handler runs yet: doorbell.c starts them after attach. */
	atomic_set(&p->host_irqs, 0);
	WRITE_ONCE(ring->irqs, 0);
	WRITE_ONCE(ring->bad, 0);
	memset(ring->guest_reserved, 0, sizeof(ring->guest_reserved));
	/* Pairs with the host's load-acquire of guest_state. */
	smp_store_release(&ring->guest_state, RIG_HRING_READY);

	memset(s, 0, sizeof(*s));
	s->magic = RIG_POOL_MAGIC;
	s->nbuf = RIG_POOL_NBUF;
	s->kbufs = RIG_POOL_KBUFS;
	rig_pool_publish(p);
	/* The host reads the rest only after it sees READY. */
	smp_store_release(&s->state, RIG_POOL_READY);
}

int rig_pool_attach(struct rig_dev *rdev)
{
	struct rig_pool *p = &rig_pool;
	struct task_struct *thread;

	BUILD_BUG_ON(sizeof(struct rig_pool_buf) != RIG_POOL_HDR_SIZE);
	BUILD_BUG_ON(sizeof(struct rig_pool_status) >
		     RIG_HRING_OFFSET - RIG_POOL_STATUS_OFFSET);
	BUILD_BUG_ON(sizeof(struct rig_hring) >
		     RIG_POOL_OFFSET - RIG_HRING_OFFSET);
	BUILD_BUG_ON(RIG_POOL_OFFSET + RIG_POOL_NBUF * RIG_POOL_BUF_SIZE >
		     RIG_SHM_NETLINK_OFFSET);
	BUILD_BUG_ON(RIG_SHM_USED_END > RIG_SHM_MIN_SIZE);
	BUILD_BUG_ON(RIG_POOL_KBUFS > RIG_HRING_FIRST_BUF);
	BUILD_BUG_ON(RIG_HRING_FIRST_BUF + RIG_HRING_SLOTS > RIG_POOL_NBUF);

	/*
	 * The thread first: it idles until a job comes, and nothing is
	 * published to the host that a failure would have to take back.
	 */
	thread = kthread_run(rig_pool_thread, NULL, "rig_pool");
	if (IS_ERR(thread))
		return PTR_ERR(thread);

	p->thread = thread;
	spin_lock(&rig_pool_lock);
	rig_pool_reset(p, rdev);
	spin_unlock(&rig_pool_lock);
	rig_barmap_attach(&rig_pool_map, p->bufs_phys,
			  RIG_POOL_NBUF * RIG_POOL_BUF_SIZE, 0);

	rig_pool_region.phys = p->bufs_phys;
	rig_region_add(&rig_pool_region);
	return 0;
}

void rig_pool_detach(struct rig_dev *rdev)
{
	struct rig_pool *p = &rig_pool;

	rig_region_del(&rig_pool_region);

	/* First: no process may touch the buffers any more. */
	rig_barmap_detach(&rig_pool_map);

	/* Waits for a buffer being filled to be queued. */
	kthread_stop(p->thread);
	p->thread = NULL;

	spin_lock(&rig_pool_lock);
	WRITE_ONCE(p->status->state, RIG_POOL_GONE);
	WRITE_ONCE(p->hring->guest_state, RIG_HRING_GONE);
	p->bufs = NULL;
	p->status = NULL;
	p->hring = NULL;
	p->pending = 0;
	spin_unlock(&rig_pool_lock);

	/* Sleepers see -ENODEV, pollers EPOLLHUP. */
	wake_up_interruptible_all(&rig_pool_read_wq);
}

/*
 * An interrupt on RIG_DB_VEC_PRODUCED: the host may have produced. Hard
 * IRQ context. doorbell.c requests the handler after rig_pool_attach()
 * and frees it before rig_pool_detach(), so the ring is there, and the
 * kernel never runs one handler on two CPUs at once, so the mirror in
 * shared memory is written in order.
 */
void rig_pool_host_irq(void)
{
	struct rig_pool *p = &rig_pool;

	WRITE_ONCE(p->hring->irqs, (u32)atomic_inc_return(&p->host_irqs));
	wake_up_interruptible_all(&rig_pool_read_wq);
}

/* The host's peer id as it wrote it into the ring, or RIG_PEER_NONE. */
u32 rig_pool_host_peer(void)
{
	struct rig_pool *p = &rig_pool;
	u32 peer = RIG_PEER_NONE;

	spin_lock(&rig_pool_lock);
	if (p->hring && READ_ONCE(p->hring->host_magic) == RIG_HRING_HOST_MAGIC)
		peer = READ_ONCE(p->hring->host_peer);
	spin_unlock(&rig_pool_lock);
	return peer;
}

/*
 * Only shows: what the host published and nobody looked at yet stays in
 * the ring (hring_prod ahead of what was queued), and nothing is written
 * to shared memory.
 */
static void rig_pool_show(struct seq_file *m)
{
	struct rig_pool *p = &rig_pool;
	struct rig_pool_info info;
	u32 prod = 0, cons = 0;
	bool attached;

	spin_lock(&rig_pool_lock);
	attached = p->bufs;
	if (attached) {
		rig_pool_snapshot(p, &info);
		prod = READ_ONCE(p->hring->prod);
		cons = p->host_cons;
	}
	spin_unlock(&rig_pool_lock);

	seq_printf(m, "%-16s %s\n", "pool", attached ? "attached" : "detached");
	if (!attached)
		return;

	seq_printf(m, "%-16s %u\n", "pool_free", info.free);
	seq_printf(m, "%-16s %u\n", "pool_ready", info.ready);
	seq_printf(m, "%-16s %u\n", "pool_taken", info.taken);
	seq_printf(m, "%-16s %u\n", "pool_pending", info.pending);
	seq_printf(m, "%-16s %llu\n", "pool_produced", info.produced);
	seq_printf(m, "%-16s %llu\n", "pool_consumed", info.consumed);
	seq_printf(m, "%-16s %llu\n", "host_queued", info.host_queued);
	seq_printf(m, "%-16s %llu\n", "host_consumed", info.host_consumed);
	seq_printf(m, "%-16s %u\n", "hring_prod", prod);
	seq_printf(m, "%-16s %u\n", "hring_cons", cons);
}

static struct rig_stats_source rig_pool_stats = { .show = rig_pool_show };

int rig_pool_init(void)
{
	int ret;

	ret = rig_barmap_init(&rig_pool_map);
	if (ret)
		return ret;

	ret = misc_register(&rig_pool_dev);
	if (ret) {
		rig_barmap_exit(&rig_pool_map);
		return ret;
	}
	rig_stats_add(&rig_pool_stats);
	return 0;
}

void rig_pool_exit(void)
{
	rig_stats_del(&rig_pool_stats);
	misc_deregister(&rig_pool_dev);
	rig_barmap_exit(&rig_pool_map);
}
