/*
 * Prints the offsets and sizes of the libnfs 4.0 structs that NfsClient fills or reads through
 * FFM, as the C compiler sees them in the installed headers (Debian's libnfs-dev). Run by
 * Nfs3LayoutsTest, which compares each line with the Java layouts in Nfs3Layouts.
 * Output: one "name value" per line.
 */
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#define SHOW(name, value) printf("%s %zu\n", name, (size_t)(value))

int main(void)
{
	SHOW("sizeof.CREATE3args", sizeof(CREATE3args));
	SHOW("CREATE3args.where.dir.data.data_len", offsetof(CREATE3args, where.dir.data.data_len));
	SHOW("CREATE3args.where.dir.data.data_val", offsetof(CREATE3args, where.dir.data.data_val));
	SHOW("CREATE3args.where.name", offsetof(CREATE3args, where.name));
	SHOW("CREATE3args.how.mode", offsetof(CREATE3args, how.mode));
	SHOW("CREATE3args.how.createhow3_u.verf", offsetof(CREATE3args, how.createhow3_u.verf));
	SHOW("CREATE3args.how.createhow3_u.obj_attributes.mode.set_it",
	     offsetof(CREATE3args, how.createhow3_u.obj_attributes.mode.set_it));
	SHOW("sizeof.createverf3", sizeof(createverf3));
	SHOW("sizeof.sattr3", sizeof(sattr3));
	SHOW("sattr3.size.size", offsetof(sattr3, size.set_size3_u.size));
	SHOW("sattr3.atime", offsetof(sattr3, atime));
	SHOW("sattr3.mtime", offsetof(sattr3, mtime));
	SHOW("sizeof.CREATE3res", sizeof(CREATE3res));
	SHOW("CREATE3res.status", offsetof(CREATE3res, status));
	SHOW("CREATE3res.CREATE3res_u.resok.obj_attributes",
	     offsetof(CREATE3res, CREATE3res_u.resok.obj_attributes));
	SHOW("CREATE3res.CREATE3res_u.resok.dir_wcc", offsetof(CREATE3res, CREATE3res_u.resok.dir_wcc));
	SHOW("enum.EXCLUSIVE", EXCLUSIVE);
	SHOW("enum.NFS3_OK", NFS3_OK);
	SHOW("enum.NFS3ERR_DQUOT", NFS3ERR_DQUOT);
	SHOW("enum.NFS3ERR_NOTSUPP", NFS3ERR_NOTSUPP);
	SHOW("enum.RPC_STATUS_SUCCESS", RPC_STATUS_SUCCESS);
	SHOW("enum.RPC_STATUS_ERROR", RPC_STATUS_ERROR);
	SHOW("enum.RPC_STATUS_CANCEL", RPC_STATUS_CANCEL);
	SHOW("enum.RPC_STATUS_TIMEOUT", RPC_STATUS_TIMEOUT);
	SHOW("sizeof.nfs_stat_64", sizeof(struct nfs_stat_64));
	SHOW("nfs_stat_64.nfs_ino", offsetof(struct nfs_stat_64, nfs_ino));
	SHOW("nfs_stat_64.nfs_mode", offsetof(struct nfs_stat_64, nfs_mode));
	SHOW("nfs_stat_64.nfs_nlink", offsetof(struct nfs_stat_64, nfs_nlink));
	SHOW("nfs_stat_64.nfs_size", offsetof(struct nfs_stat_64, nfs_size));
	SHOW("nfs_stat_64.nfs_atime", offsetof(struct nfs_stat_64, nfs_atime));
	SHOW("nfs_stat_64.nfs_mtime", offsetof(struct nfs_stat_64, nfs_mtime));
	SHOW("nfs_stat_64.nfs_atime_nsec", offsetof(struct nfs_stat_64, nfs_atime_nsec));
	SHOW("nfs_stat_64.nfs_mtime_nsec", offsetof(struct nfs_stat_64, nfs_mtime_nsec));
	SHOW("sizeof.pollfd", sizeof(struct pollfd));
	SHOW("pollfd.fd", offsetof(struct pollfd, fd));
	SHOW("pollfd.events", offsetof(struct pollfd, events));
	SHOW("pollfd.revents", offsetof(struct pollfd, revents));
	SHOW("enum.POLLIN", POLLIN);
	SHOW("enum.POLLOUT", POLLOUT);
	return 0;
}
