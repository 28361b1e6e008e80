// SPDX-License-Identifier: GPL-2.0
/*
 * 1. Netlink hands out the address of shared pages.
 *
 * The 2.6 article: the module allocates pages with __get_free_pages(),
 * marks them reserved, writes a greeting into them and answers a custom
 * netlink request with their physical address; userspace then maps that
 * address through /dev/mem and reads the greeting.
 *
 * Today /dev/mem refuses that (CONFIG_STRICT_DEVMEM: System RAM is off
 * limits, and with IO_STRICT_DEVMEM so is a BAR a driver claimed), so
 * the module offers its own memory device, /dev/rig_mem: mmap() at
 * offset = physical address, allowed only for the netlink pages and the
 * ivshmem BAR2 (whose mappings are revoked when the device goes away).
 * The answer carries both addresses. Only a caller with CAP_SYS_ADMIN
 * gets them; others get an NLMSG_ERROR with -EPERM.
 */
#include <linux/capability.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/netlink.h>
#include <linux/string.h>
#include <net/net_namespace.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "uapi/rig_kmod.h"

#include "compat.h"
#include "rig_kmod.h"

static struct sock *rig_nl_sock;
static void *rig_nl_pages;	/* RIG_NL_PAGES_SIZE bytes, reserved */

/*
 * BAR2 of the bound device, given by ivshmem_pci.c, at file offset =
 * physical address; its mappings are revoked on detach.
 */
static struct rig_barmap rig_mem_map;

static struct rig_region rig_nl_region = {
	.name = "netlink",
	.kind = "pages",
	.size = RIG_NL_PAGES_SIZE,
};

/* ---- the device's BAR2 ------------------------------------------------ */

void rig_mem_attach(struct rig_dev *rdev)
{
	rig_barmap_attach(&rig_mem_map, rdev->shm_phys, rdev->shm_size,
			  PHYS_PFN(rdev->shm_phys));
}

void rig_mem_detach(struct rig_dev *rdev)
{
	rig_barmap_detach(&rig_mem_map);
}

/* ---- the netlink side ------------------------------------------------ */

static int rig_nl_get(struct sk_buff *skb, struct nlmsghdr *nlh,
		      struct netlink_ext_ack *extack)
{
	u32 portid = NETLINK_CB(skb).portid;
	struct rig_nl_shared *ans;
	resource_size_t shm_size;
	struct nlmsghdr *rnlh;
	struct sk_buff *reply;
	phys_addr_t shm_phys;

	if (nlh->nlmsg_type != RIG_NL_MSG_GET)
		return -EOPNOTSUPP;

	rig_count(netlink_requests);
	/* The sender's capability, not the receiving socket's. */
	if (!netlink_capable(skb, CAP_SYS_ADMIN)) {
		rig_count(netlink_denied);
		return -EPERM;
	}

	reply = nlmsg_new(sizeof(*ans), GFP_KERNEL);
	if (!reply)
		return -ENOMEM;

	rnlh = nlmsg_put(reply, portid, nlh->nlmsg_seq, RIG_NL_MSG_SHARED,
			 sizeof(*ans), 0);
	if (!rnlh) {
		kfree_skb(reply);
		return -EMSGSIZE;
	}

	ans = nlmsg_data(rnlh);
	memset(ans, 0, sizeof(*ans));
	ans->pages_phys = virt_to_phys(rig_nl_pages);
	ans->pages_size = RIG_NL_PAGES_SIZE;
	if (rig_barmap_window(&rig_mem_map, &shm_phys, &shm_size)) {
		ans->shm_phys = shm_phys;
		ans->shm_size = shm_size;
	}
	ans->abi_version = RIG_ABI_VERSION;
	ans->greeting_len = strlen(RIG_NL_GREETING);

	/* Consumes reply, also on error. */
	return nlmsg_unicast(rig_nl_sock, reply, portid);
}

/* Runs in the sender's context; errors go back as NLMSG_ERROR. */
static void rig_nl_input(struct sk_buff *skb)
{
	netlink_rcv_skb(skb, rig_nl_get);
}

/* ---- /dev/rig_mem: the module's own /dev/mem ------------------------- */

/* [start, start + len) lies within [base, base + size). */
static bool rig_mem_within(phys_addr_t start, size_t len, phys_addr_t base,
			   resource_size_t size)
{
	return start >= base && start - base < size &&
	       len <= size - (start - base);
}

static int rig_mem_open(struct inode *inode, struct file *file)
{
	rig_barmap_open(&rig_mem_map, file);
	return 0;
}

static int rig_mem_mmap(struct file *file, struct vm_area_struct *vma)
{
	phys_addr_t start = (phys_addr_t)vma->vm_pgoff << PAGE_SHIFT;
	size_t len = vma->vm_end - vma->vm_start;
	int ret;

	/* The point is to share: a private copy would be no use. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;

	/* No 32-bit overflow games: the offset must survive the shift. */
	if (start >> PAGE_SHIFT != vma->vm_pgoff)
		return -EINVAL;

	if (rig_mem_within(start, len, virt_to_phys(rig_nl_pages),
			   RIG_NL_PAGES_SIZE)) {
		/* Write-back, the default protection: the pages are RAM. */
		rig_vm_flags_set(vma, VM_IO | RIG_VM_RESERVED);
		ret = remap_pfn_range(vma, vma->vm_start, vma->vm_pgoff, len,
				      vma->vm_page_prot);
	} else {
		/* BAR2 of the bound device, else refused as /dev/mem does. */
		ret = rig_barmap_mmap(&rig_mem_map, vma) ? -EPERM : 0;
	}

	if (!ret)
		rig_count(mem_mmaps);
	return ret;
}

/* .owner pins the module while the file or a mapping of it exists. */
static const struct file_operations rig_mem_fops = {
	.owner	= THIS_MODULE,
	.open	= rig_mem_open,
	.mmap	= rig_mem_mmap,
};

static struct miscdevice rig_mem_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= RIG_MEM_DEV_NAME,
	.fops	= &rig_mem_fops,
	.mode	= 0600,
};

/* ---- setup ------------------------------------------------------------ */

static void rig_nl_free_pages(void)
{
	size_t off;

	for (off = 0; off < RIG_NL_PAGES_SIZE; off += PAGE_SIZE)
		ClearPageReserved(virt_to_page(rig_nl_pages + off));
	free_pages((unsigned long)rig_nl_pages, RIG_NL_PAGES_ORDER);
}

int rig_netlink_init(void)
{
	size_t off;
	int ret;

	BUILD_BUG_ON((PAGE_SIZE << RIG_NL_PAGES_ORDER) != RIG_NL_PAGES_SIZE);
	BUILD_BUG_ON(RIG_NETLINK_PROTO >= MAX_LINKS);

	rig_nl_pages = (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO,
						RIG_NL_PAGES_ORDER);
	if (!rig_nl_pages)
		return -ENOMEM;

	/*
	 * Reserved page by page, as the article did. remap_pfn_range() has
	 * not needed it since 2.6.15 (VM_PFNMAP mappings take no page
	 * references); it still documents that the pages are not the page
	 * allocator's while the module holds them. Allowed here because
	 * without __GFP_COMP these are not a compound page (see mmap_dev.c).
	 */
	for (off = 0; off < RIG_NL_PAGES_SIZE; off += PAGE_SIZE)
		SetPageReserved(virt_to_page(rig_nl_pages + off));
	strscpy(rig_nl_pages, RIG_NL_GREETING, PAGE_SIZE);

	rig_nl_sock = rig_netlink_kernel_create(&init_net, RIG_NETLINK_PROTO,
						rig_nl_input);
	if (!rig_nl_sock) {
		pr_err("netlink protocol %d is taken\n", RIG_NETLINK_PROTO);
		ret = -EBUSY;
		goto err_free_pages;
	}

	ret = rig_barmap_init(&rig_mem_map);
	if (ret)
		goto err_release_sock;

	ret = misc_register(&rig_mem_dev);
	if (ret)
		goto err_barmap_exit;

	rig_nl_region.phys = virt_to_phys(rig_nl_pages);
	rig_region_add(&rig_nl_region);
	return 0;

err_barmap_exit:
	rig_barmap_exit(&rig_mem_map);
err_release_sock:
	netlink_kernel_release(rig_nl_sock);
err_free_pages:
	rig_nl_free_pages();
	return ret;
}

void rig_netlink_exit(void)
{
	rig_region_del(&rig_nl_region);
	misc_deregister(&rig_mem_dev);
	rig_barmap_exit(&rig_mem_map);
	netlink_kernel_release(rig_nl_sock);
	rig_nl_free_pages();
}
