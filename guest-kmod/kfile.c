// SPDX-License-Identifier: GPL-2.0
/*
 * 8. File I/O from the kernel.
 *
 * At load the module writes the file named by the kfile_path parameter
 * with kernel_write() (RIG_KFILE_GREETING, then the kernel release), reads
 * it back with kernel_read() and compares. The 2.6 article did this with
 * set_fs(KERNEL_DS) around f_op->read/write; see compat.h.
 *
 * /proc/rig_kmod/kfile then lets a check drive it both ways: reading it
 * makes the kernel read the file and return what it found, writing it
 * makes the kernel replace the file's content with what was written.
 * Only a regular file at the path itself is used: a symlink there gives
 * -ELOOP, a FIFO -ENXIO or -EINVAL, a directory -EISDIR or -EINVAL.
 *
 * Reading and writing files from a module is rarely right outside a
 * demonstration: paths depend on the caller's namespace, and policy on
 * what to write belongs to userspace. It runs in the context of whoever
 * triggers it (insmod, or the reader/writer of the proc file).
 */
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/utsname.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static char *rig_kfile_path = RIG_KFILE_DEFAULT_PATH;
module_param_named(kfile_path, rig_kfile_path, charp, 0444);
MODULE_PARM_DESC(kfile_path, "file the module writes and reads with kernel_write/kernel_read (default " RIG_KFILE_DEFAULT_PATH ")");

/* The largest file the module reads or writes. */
#define RIG_KFILE_MAX	4096

/* Serialises the module's own accesses to the file. */
static DEFINE_MUTEX(rig_kfile_lock);
/* Outcome of the check at load: 1 passed, else a negative errno. */
static int rig_kfile_loadcheck;

/*
 * Opens kfile_path, which lies in a directory anyone may write to (/tmp by
 * default), for the module's own I/O, and only if a regular file is really
 * there: never through a symlink (root writing through one planted in /tmp
 * overwrites any file on the system), and without waiting on what is there
 * (opening a FIFO waits for its other end, with rig_kfile_lock held, and
 * every other user of the file queues up behind it). Found by the fuzzer.
 */
static struct file *rig_kfile_open(int flags, umode_t mode)
{
	struct file *file;

	file = filp_open(rig_kfile_path,
			 flags | O_LARGEFILE | O_NOFOLLOW | O_NONBLOCK, mode);
	if (IS_ERR(file))
		return file;
	if (!S_ISREG(rig_file_inode(file)->i_mode)) {
		filp_close(file, NULL);
		return ERR_PTR(-EINVAL);
	}
	return file;
}

static ssize_t rig_kfile_write(const void *data, size_t len)
{
	struct file *file;
	loff_t pos = 0;
	ssize_t ret;

	file = rig_kfile_open(O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (IS_ERR(file))
		return PTR_ERR(file);

	ret = rig_kernel_write(file, data, len, &pos);
	filp_close(file, NULL);
	rig_count(kfile_writes);

	/* A short write leaves a truncated file: report it. */
	if (ret >= 0 && (size_t)ret != len)
		ret = -EIO;
	return ret;
}

/* Reads the whole file (at most RIG_KFILE_MAX bytes) into buf. */
static ssize_t rig_kfile_read(void *buf)
{
	struct file *file;
	loff_t pos = 0;
	loff_t size;
	ssize_t ret;

	file = rig_kfile_open(O_RDONLY, 0);
	if (IS_ERR(file))
		return PTR_ERR(file);

	size = i_size_read(rig_file_inode(file));
	if (size > RIG_KFILE_MAX) {
		ret = -EFBIG;
		goto out_close;
	}
	ret = rig_kernel_read(file, buf, size, &pos);
	rig_count(kfile_reads);

out_close:
	filp_close(file, NULL);
	return ret;
}

/* At load: write the greeting, read it back, compare. */
static int rig_kfile_check(void)
{
	char *want, *got;
	ssize_t len, ret;

	want = kzalloc(RIG_KFILE_MAX, GFP_KERNEL);
	got = kzalloc(RIG_KFILE_MAX, GFP_KERNEL);
	if (!want || !got) {
		ret = -ENOMEM;
		goto out_free;
	}

	len = scnprintf(want, RIG_KFILE_MAX, "%s\nkernel %s\n",
			RIG_KFILE_GREETING, utsname()->release);
	ret = rig_kfile_write(want, len);
	if (ret < 0)
		goto out_free;

	ret = rig_kfile_read(got);
	if (ret < 0)
		goto out_free;
	ret = (ret == len && !memcmp(want, got, len)) ? 1 : -EIO;

out_free:
	kfree(got);
	kfree(want);
	return ret;
}

/* ---- /proc/rig_kmod/kfile --------------------------------------------- */

static int rig_kfile_proc_show(struct seq_file *m, void *v)
{
	ssize_t ret;
	char *buf;

	buf = kmalloc(RIG_KFILE_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	mutex_lock(&rig_kfile_lock);
	ret = rig_kfile_read(buf);
	mutex_unlock(&rig_kfile_lock);

	if (ret >= 0)
		seq_write(m, buf, ret);
	kfree(buf);
	return ret < 0 ? ret : 0;
}

static int rig_kfile_proc_open(struct inode *inode, struct file *file)
{
	return single_open(file, rig_kfile_proc_show, NULL);
}

static ssize_t rig_kfile_proc_write(struct file *file, const char __user *ubuf,
				    size_t count, loff_t *ppos)
{
	ssize_t ret;
	char *data;

	if (count > RIG_KFILE_MAX)
		return -EFBIG;

	data = memdup_user(ubuf, count);
	if (IS_ERR(data))
		return PTR_ERR(data);

	mutex_lock(&rig_kfile_lock);
	ret = rig_kfile_write(data, count);
	mutex_unlock(&rig_kfile_lock);

	kfree(data);
	if (ret < 0)
		return ret;
	return count;
}

RIG_DEFINE_PROC_OPS(rig_kfile_proc_ops, rig_kfile_proc_open, single_release,
		    rig_kfile_proc_write);

/* ---- its lines in /proc/rig_kmod/stats -------------------------------- */

static void rig_kfile_show(struct seq_file *m)
{
	seq_printf(m, "%-16s %s\n", "kfile_path", rig_kfile_path);
	if (rig_kfile_loadcheck > 0)
		seq_printf(m, "%-16s %s\n", "kfile_loadcheck", "ok");
	else
		seq_printf(m, "%-16s %s %d\n", "kfile_loadcheck", "error",
			   rig_kfile_loadcheck);
}

static struct rig_stats_source rig_kfile_stats = { .show = rig_kfile_show };

/* ---- setup ------------------------------------------------------------- */

int rig_kfile_init(void)
{
	if (!rig_kfile_path || rig_kfile_path[0] != '/') {
		pr_err("kfile_path must be an absolute path\n");
		return -EINVAL;
	}

	/* A failure is reported (stats, log), not fatal: it is a check. */
	mutex_lock(&rig_kfile_lock);
	rig_kfile_loadcheck = rig_kfile_check();
	mutex_unlock(&rig_kfile_lock);
	if (rig_kfile_loadcheck < 0)
		pr_warn("writing and reading back %s failed: %d\n",
			rig_kfile_path, rig_kfile_loadcheck);

	if (!proc_create("kfile", 0600, rig_proc_dir(), &rig_kfile_proc_ops))
		return -ENOMEM;
	rig_stats_add(&rig_kfile_stats);
	return 0;
}

void rig_kfile_exit(void)
{
	rig_stats_del(&rig_kfile_stats);
	remove_proc_entry("kfile", rig_proc_dir());
}
