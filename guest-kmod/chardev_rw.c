// SPDX-License-Identifier: GPL-2.0
/*
 * 6. read/write with copy_to_user/copy_from_user.
 *
 * /dev/rig_rw is a bounded buffer of RIG_RW_BUF_SIZE bytes behaving like
 * a small file: read() and write() honour count and the file position,
 * a read at the end returns 0, a write past the end of the buffer stores
 * what fits and then fails with -ENOSPC, lseek() works (SEEK_END is the
 * end of the data), opening for writing with O_TRUNC empties it, and a
 * bad user pointer gives -EFAULT.
 *
 * The article's version kmalloc()ed a new buffer on every write, never
 * freed the old one, and copied a fixed size whatever count said. Here
 * the buffers are allocated once at load, and every copy is bounded by
 * count, the position and the buffer size. A write copies into a bounce
 * buffer first: copy_from_user() zero-fills what it could not copy, so a
 * bad pointer would otherwise wipe the data it was to overwrite.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "rig_kmod.h"

static DEFINE_MUTEX(rig_rw_lock);
static char *rig_rw_buf;	/* RIG_RW_BUF_SIZE bytes */
static char *rig_rw_bounce;	/* as big: where write() copies first */
/* Bytes of data, <= RIG_RW_BUF_SIZE; llseek() reads it without the lock. */
static size_t rig_rw_len;

static int rig_rw_open(struct inode *inode, struct file *file)
{
	if ((file->f_mode & FMODE_WRITE) && (file->f_flags & O_TRUNC)) {
		mutex_lock(&rig_rw_lock);
		memset(rig_rw_buf, 0, RIG_RW_BUF_SIZE);
		WRITE_ONCE(rig_rw_len, 0);
		mutex_unlock(&rig_rw_lock);
	}
	return 0;
}

static ssize_t rig_rw_read(struct file *file, char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	loff_t pos = *ppos;
	ssize_t ret;
	size_t n;

	rig_count(rw_reads);
	if (pos < 0)
		return -EINVAL;

	mutex_lock(&rig_rw_lock);
	if (pos >= rig_rw_len) {
		ret = 0;
		goto out_unlock;
	}
	n = min_t(size_t, count, rig_rw_len - pos);
	if (copy_to_user(ubuf, rig_rw_buf + pos, n)) {
		ret = -EFAULT;
		goto out_unlock;
	}
	*ppos = pos + n;
	ret = n;

out_unlock:
	mutex_unlock(&rig_rw_lock);
	return ret;
}

static ssize_t rig_rw_write(struct file *file, const char __user *ubuf,
			    size_t count, loff_t *ppos)
{
	loff_t pos;
	ssize_t ret;
	size_t n;

	rig_count(rw_writes);
	if (!count)
		return 0;

	mutex_lock(&rig_rw_lock);
	pos = (file->f_flags & O_APPEND) ? rig_rw_len : *ppos;
	if (pos < 0) {
		ret = -EINVAL;
		goto out_unlock;
	}
	if (pos >= RIG_RW_BUF_SIZE) {
		ret = -ENOSPC;
		goto out_unlock;
	}
	n = min_t(size_t, count, RIG_RW_BUF_SIZE - pos);
	if (copy_from_user(rig_rw_bounce, ubuf, n)) {
		ret = -EFAULT;
		goto out_unlock;
	}
	memcpy(rig_rw_buf + pos, rig_rw_bounce, n);
	WRITE_ONCE(rig_rw_len, max_t(size_t, rig_rw_len, pos + n));
	*ppos = pos + n;
	ret = n;

out_unlock:
	mutex_unlock(&rig_rw_lock);
	return ret;
}

static loff_t rig_rw_llseek(struct file *file, loff_t offset, int whence)
{
	return generic_file_llseek_size(file, offset, whence, RIG_RW_BUF_SIZE,
					READ_ONCE(rig_rw_len));
}

static const struct file_operations rig_rw_fops = {
	.owner	= THIS_MODULE,
	.open	= rig_rw_open,
	.read	= rig_rw_read,
	.write	= rig_rw_write,
	.llseek	= rig_rw_llseek,
};

static struct miscdevice rig_rw_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_RW_DEV_NAME,
	.fops	= &rig_rw_fops,
	.mode	= 0600,
};

int rig_rw_dev_init(void)
{
	int ret;

	rig_rw_buf = kzalloc(RIG_RW_BUF_SIZE, GFP_KERNEL);
	rig_rw_bounce = kzalloc(RIG_RW_BUF_SIZE, GFP_KERNEL);
	if (!rig_rw_buf || !rig_rw_bounce) {
		ret = -ENOMEM;
		goto err_free;
	}

	ret = misc_register(&rig_rw_dev);
	if (ret)
		goto err_free;
	return 0;

err_free:
	kfree(rig_rw_bounce);
	kfree(rig_rw_buf);
	return ret;
}

void rig_rw_dev_exit(void)
{
	misc_deregister(&rig_rw_dev);
	kfree(rig_rw_bounce);
	kfree(rig_rw_buf);
}
