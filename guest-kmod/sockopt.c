// SPDX-License-Identifier: GPL-2.0
/*
 * 4. get/setsockopt through nf_register_sockopt().
 *
 * Netfilter lets a module own a range of option numbers at level SOL_IP
 * of IPv4 sockets (iptables uses this for its tables). Options
 * RIG_SO_BASE .. RIG_SO_MAX - 1 are ours:
 *
 *   setsockopt(RIG_SO_MSG, struct rig_so_msg)   stores a message
 *   getsockopt(RIG_SO_MSG, struct rig_so_msg)   returns it, seq = sets
 *   getsockopt(RIG_SO_STATS, struct rig_so_stats)
 *
 * The length must be exactly the struct's size (-EINVAL), an unknown
 * number in the range gives -ENOPROTOOPT (as netfilter does outside it),
 * and CAP_NET_ADMIN is required (-EPERM), as for iptables.
 */
#include <linux/capability.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netfilter.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <net/sock.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static DEFINE_MUTEX(rig_so_lock);
static struct rig_so_msg rig_so_msg;		/* the last message set */
static struct rig_so_stats rig_so_stats;

static int rig_so_set(struct sock *sk, int optval, RIG_SOCKOPT_ARG arg,
		      unsigned int len)
{
	struct rig_so_msg msg;
	int ret;

	if (!ns_capable(sock_net(sk)->user_ns, CAP_NET_ADMIN))
		return -EPERM;

	if (optval != RIG_SO_MSG) {
		ret = -ENOPROTOOPT;
		goto err_count;
	}
	if (len != sizeof(msg)) {
		ret = -EINVAL;
		goto err_count;
	}
	ret = rig_copy_from_sockopt(&msg, arg, sizeof(msg));
	if (ret)
		goto err_count;
	if (msg.len > RIG_SO_MSG_MAX) {
		ret = -EINVAL;
		goto err_count;
	}

	mutex_lock(&rig_so_lock);
	memset(&rig_so_msg, 0, sizeof(rig_so_msg));
	memcpy(rig_so_msg.data, msg.data, msg.len);
	rig_so_msg.len = msg.len;
	rig_so_stats.sets++;
	/* seq is 32 bits wide: it wraps, the 64-bit count does not. */
	rig_so_msg.seq = lower_32_bits(rig_so_stats.sets);
	mutex_unlock(&rig_so_lock);

	rig_count(sockopt_sets);
	return 0;

err_count:
	rig_count(sockopt_errors);
	return ret;
}

static int rig_so_get(struct sock *sk, int optval, void __user *user,
		      int *len)
{
	union {
		struct rig_so_msg msg;
		struct rig_so_stats stats;
	} out;
	size_t size;

	if (!ns_capable(sock_net(sk)->user_ns, CAP_NET_ADMIN))
		return -EPERM;

	mutex_lock(&rig_so_lock);
	rig_so_stats.gets++;
	switch (optval) {
	case RIG_SO_MSG:
		out.msg = rig_so_msg;
		size = sizeof(out.msg);
		break;
	case RIG_SO_STATS:
		out.stats = rig_so_stats;
		size = sizeof(out.stats);
		break;
	default:
		size = 0;
		break;
	}
	mutex_unlock(&rig_so_lock);

	if (!size) {
		rig_count(sockopt_errors);
		return -ENOPROTOOPT;
	}
	if (*len < 0 || (size_t)*len != size) {
		rig_count(sockopt_errors);
		return -EINVAL;
	}
	if (copy_to_user(user, &out, size))
		return -EFAULT;

	rig_count(sockopt_gets);
	return 0;
}

static struct nf_sockopt_ops rig_so_ops = {
	.pf		= PF_INET,
	.set_optmin	= RIG_SO_BASE,
	.set_optmax	= RIG_SO_MAX,
	.set		= rig_so_set,
	.get_optmin	= RIG_SO_BASE,
	.get_optmax	= RIG_SO_MAX,
	.get		= rig_so_get,
	.owner		= THIS_MODULE,
};

int rig_sockopt_init(void)
{
	return nf_register_sockopt(&rig_so_ops);
}

void rig_sockopt_exit(void)
{
	nf_unregister_sockopt(&rig_so_ops);
}
