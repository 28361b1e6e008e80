// SPDX-License-Identifier: GPL-2.0
/*
 * hello_counter - the rig's small example module.
 *
 * /dev/hello_counter answers each read with a greeting and how many times
 * it was opened; a write replaces the greeting (up to 63 bytes).
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>

static DEFINE_MUTEX(hello_lock);
static char greeting[64] = "hello";
static unsigned long opens;

static int hello_open(struct inode *inode, struct file *file)
{
	mutex_lock(&hello_lock);
	opens++;
	mutex_unlock(&hello_lock);
	return 0;
}

static ssize_t hello_read(struct file *file, char __user *buf, size_t count,
			  loff_t *ppos)
{
	char line[96];
	int len;

	mutex_lock(&hello_lock);
	len = scnprintf(line, sizeof(line), "%s %lu\n", greeting, opens);
	mutex_unlock(&hello_lock);
	return simple_read_from_buffer(buf, count, ppos, line, len);
}

static ssize_t hello_write(struct file *file, const char __user *buf,
			   size_t count, loff_t *ppos)
{
	char text[sizeof(greeting)] = {};
	size_t len = min(count, sizeof(text) - 1);

	if (copy_from_user(text, buf, len))
		return -EFAULT;
	strim(text);
	mutex_lock(&hello_lock);
	strscpy(greeting, text, sizeof(greeting));
	mutex_unlock(&hello_lock);
	return count;
}

static const struct file_operations hello_fops = {
	.owner = THIS_MODULE,
	.open = hello_open,
	.read = hello_read,
	.write = hello_write,
};

static struct miscdevice hello_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "hello_counter",
	.fops = &hello_fops,
	.mode = 0600,
};

module_misc_device(hello_dev);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("The rig's example module: a counting greeter");
