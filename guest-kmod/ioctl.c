// SPDX-License-Identifier: GPL-2.0
/*
 * 7. ioctl with _IOR/_IOW/_IOWR numbers.
 *
 * /dev/rig_ioctl keeps one struct rig_config:
 *
 *   RIG_IOC_GET_CONFIG   _IOR   copy it out
 *   RIG_IOC_SET_CONFIG   _IOW   validate and store a new one
 *   RIG_IOC_XCHG_CONFIG  _IOWR  store a new one, return the old
 *   RIG_IOC_RESET_CONFIG _IO    back to the defaults
 *
 * As the article taught, the number is checked piece by piece before the
 * switch: type (magic) and number range, then the size and direction
 * must be exactly those of a known command. Anything else is -ENOTTY,
 * the "not a typewriter" answer the VFS and libc expect for an ioctl the
 * device does not have (-EINVAL would mean "right ioctl, bad argument").
 * access_ok() is checked up front as in the article, though
 * copy_{to,from}_user() check it again.
 */
#include <linux/fs.h>
#include <linux/ioctl.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static DEFINE_MUTEX(rig_ioctl_lock);
static struct rig_config rig_config;

static const struct rig_config rig_config_default = {
	.flags	= 0,
	.level	= 1,
	.cookie	= 0,
	.name	= "default",
};

/* -EINVAL unless flags, level and name are valid. */
static int rig_config_check(const struct rig_config *c)
{
	if (c->flags & ~RIG_CONFIG_F_ALL)
		return -EINVAL;
	if (c->level > RIG_CONFIG_LEVEL_MAX)
		return -EINVAL;
	if (!memchr(c->name, '\0', sizeof(c->name)))
		return -EINVAL;
	return 0;
}

/* True if cmd is one of ours, with the right direction and size. */
static bool rig_ioctl_known(unsigned int cmd)
{
	if (_IOC_TYPE(cmd) != RIG_IOC_MAGIC)
		return false;
	if (_IOC_NR(cmd) < _IOC_NR(RIG_IOC_GET_CONFIG) ||
	    _IOC_NR(cmd) > RIG_IOC_CONFIG_MAXNR)
		return false;

	switch (cmd) {
	case RIG_IOC_GET_CONFIG:
	case RIG_IOC_SET_CONFIG:
	case RIG_IOC_XCHG_CONFIG:
	case RIG_IOC_RESET_CONFIG:
		return true;
	default:
		/* Right number, wrong size or direction. */
		return false;
	}
}

static long rig_ioctl_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	struct rig_config in = { 0 }, out;
	long ret = 0;

	rig_count(ioctls);
	if (!rig_ioctl_known(cmd)) {
		rig_count(ioctl_errors);
		return -ENOTTY;
	}

	/* The kernel's _IOC_READ is userspace reading: the kernel writes. */
	if ((_IOC_DIR(cmd) & _IOC_READ) &&
	    !rig_access_ok(VERIFY_WRITE, argp, _IOC_SIZE(cmd)))
		return -EFAULT;
	if ((_IOC_DIR(cmd) & _IOC_WRITE) &&
	    !rig_access_ok(VERIFY_READ, argp, _IOC_SIZE(cmd)))
		return -EFAULT;

	if (_IOC_DIR(cmd) & _IOC_WRITE) {
		if (copy_from_user(&in, argp, sizeof(in)))
			return -EFAULT;
		ret = rig_config_check(&in);
		if (ret) {
			rig_count(ioctl_errors);
			return ret;
		}
	}

	mutex_lock(&rig_ioctl_lock);
	out = rig_config;
	switch (cmd) {
	case RIG_IOC_GET_CONFIG:
		break;
	case RIG_IOC_SET_CONFIG:
	case RIG_IOC_XCHG_CONFIG:
		rig_config = in;
		break;
	case RIG_IOC_RESET_CONFIG:
		rig_config = rig_config_default;
		break;
	}
	mutex_unlock(&rig_ioctl_lock);

	if ((_IOC_DIR(cmd) & _IOC_READ) && copy_to_user(argp, &out, sizeof(out)))
		return -EFAULT;

	return 0;
}

RIG_DEFINE_IOCTL(rig_ioctl)

static const struct file_operations rig_ioctl_fops = {
	.owner	= THIS_MODULE,
	RIG_FOPS_IOCTL(rig_ioctl),
};

static struct miscdevice rig_ioctl_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_IOCTL_DEV_NAME,
	.fops	= &rig_ioctl_fops,
	.mode	= 0600,
};

int rig_ioctl_dev_init(void)
{
	rig_config = rig_config_default;
	return misc_register(&rig_ioctl_dev);
}

void rig_ioctl_dev_exit(void)
{
	misc_deregister(&rig_ioctl_dev);
}
