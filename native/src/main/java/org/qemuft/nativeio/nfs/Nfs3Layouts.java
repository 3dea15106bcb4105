package org.qemuft.nativeio.nfs;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.MemoryLayout.paddingLayout;
import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.MemoryLayout.unionLayout;

import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

/**
 * The C structs of libnfs 4.0 (Debian's libnfs13 / libnfs-dev 4.0.0) that {@link NfsClient}
 * reads or fills, as FFM layouts for x86-64 (LP64). Transcribed from the installed headers
 * {@code nfsc/libnfs-raw-nfs.h} (rpcgen output of the NFSv3 XDR), {@code nfsc/libnfs.h} and
 * {@code poll.h}; {@code Nfs3LayoutsTest} compiles a C program against those headers and compares
 * every offset and size used here with what the C compiler says. {@link #NFS_FH} is the one
 * exception: libnfs keeps {@code struct nfs_fh} in its private header, so only the integration
 * tests check it (a wrong layout gives the server a garbage file handle).
 */
final class Nfs3Layouts {
  private Nfs3Layouts() {}

  private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT;
  private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG;

  /** {@code enum createmode3}. */
  static final int UNCHECKED = 0;
  static final int GUARDED = 1;
  static final int EXCLUSIVE = 2;
  /** {@code NFS3_CREATEVERFSIZE}. */
  static final int CREATEVERF_SIZE = 8;
  /** {@code enum nfsstat3} values used here. */
  static final int NFS3_OK = 0;
  static final int NFS3ERR_DQUOT = 69;
  static final int NFS3ERR_NOTSUPP = 10004;
  /** Status values libnfs passes to an {@code rpc_cb} ({@code RPC_STATUS_*} in libnfs-raw.h). */
  static final int RPC_STATUS_SUCCESS = 0;
  static final int RPC_STATUS_ERROR = 1;
  static final int RPC_STATUS_CANCEL = 2;
  static final int RPC_STATUS_TIMEOUT = 3;

  /** {@code struct nfs_fh3 { struct { u_int data_len; char *data_val; } data; }}. */
  static final StructLayout NFS_FH3 = structLayout(
      structLayout(U32.withName("data_len"), paddingLayout(4), ValueLayout.ADDRESS.withName("data_val"))
          .withName("data"));

  /** {@code struct diropargs3 { nfs_fh3 dir; filename3 name; }}. */
  static final StructLayout DIROPARGS3 = structLayout(
      NFS_FH3.withName("dir"), ValueLayout.ADDRESS.withName("name"));

  /** {@code struct set_mode3}, {@code set_uid3}, {@code set_gid3}: {@code uint32_t set_it; union { u_int v; }}. */
  private static StructLayout setU32(String field) {
    return structLayout(U32.withName("set_it"), U32.withName(field));
  }

  /** {@code struct nfstime3 { u_int seconds; u_int nseconds; }}. */
  static final StructLayout NFSTIME3 = structLayout(U32.withName("seconds"), U32.withName("nseconds"));

  /** {@code struct sattr3}. */
  static final StructLayout SATTR3 = structLayout(
      setU32("mode").withName("mode"),
      setU32("uid").withName("uid"),
      setU32("gid").withName("gid"),
      structLayout(U32.withName("set_it"), paddingLayout(4), U64.withName("size")).withName("size"),
      structLayout(U32.withName("set_it"), NFSTIME3.withName("atime")).withName("atime"),
      structLayout(U32.withName("set_it"), NFSTIME3.withName("mtime")).withName("mtime"));

  /** {@code struct createhow3 { createmode3 mode; union { sattr3; sattr3; createverf3 verf; } createhow3_u; }}. */
  static final StructLayout CREATEHOW3 = structLayout(
      U32.withName("mode"), paddingLayout(4),
      unionLayout(
          SATTR3.withName("obj_attributes"),
          SATTR3.withName("g_obj_attributes"),
          sequenceLayout(CREATEVERF_SIZE, ValueLayout.JAVA_BYTE).withName("verf"))
          .withName("createhow3_u"));

  /** {@code struct CREATE3args { diropargs3 where; createhow3 how; }}. */
  static final StructLayout CREATE3ARGS = structLayout(
      DIROPARGS3.withName("where"), CREATEHOW3.withName("how"));

  /** {@code struct post_op_attr}'s {@code fattr3}: only its size and alignment matter here. */
  private static final StructLayout FATTR3 = structLayout(
      U32.withName("type"), U32.withName("mode"), U32.withName("nlink"), U32.withName("uid"),
      U32.withName("gid"), paddingLayout(4), U64.withName("size"), U64.withName("used"),
      structLayout(U32.withName("specdata1"), U32.withName("specdata2")).withName("rdev"),
      U64.withName("fsid"), U64.withName("fileid"),
      NFSTIME3.withName("atime"), NFSTIME3.withName("mtime"), NFSTIME3.withName("ctime"));

  private static final StructLayout POST_OP_ATTR = structLayout(
      U32.withName("attributes_follow"), paddingLayout(4), FATTR3.withName("attributes"));

  private static final StructLayout WCC_DATA = structLayout(
      structLayout(U32.withName("attributes_follow"), paddingLayout(4),
          structLayout(U64.withName("size"), NFSTIME3.withName("mtime"), NFSTIME3.withName("ctime"))
              .withName("attributes")).withName("before"),
      POST_OP_ATTR.withName("after"));

  /** {@code struct CREATE3res { nfsstat3 status; union { CREATE3resok; CREATE3resfail; }; }}. */
  static final StructLayout CREATE3RES = structLayout(
      U32.withName("status"), paddingLayout(4),
      unionLayout(
          structLayout(
              structLayout(U32.withName("handle_follows"), paddingLayout(4), NFS_FH3.withName("handle"))
                  .withName("obj"),
              POST_OP_ATTR.withName("obj_attributes"),
              WCC_DATA.withName("dir_wcc")).withName("resok"),
          structLayout(WCC_DATA.withName("dir_wcc")).withName("resfail"))
          .withName("CREATE3res_u"));

  /** {@code struct nfs_stat_64}: 17 {@code uint64_t}. */
  static final StructLayout NFS_STAT_64 = structLayout(
      U64.withName("nfs_dev"), U64.withName("nfs_ino"), U64.withName("nfs_mode"), U64.withName("nfs_nlink"),
      U64.withName("nfs_uid"), U64.withName("nfs_gid"), U64.withName("nfs_rdev"), U64.withName("nfs_size"),
      U64.withName("nfs_blksize"), U64.withName("nfs_blocks"), U64.withName("nfs_atime"),
      U64.withName("nfs_mtime"), U64.withName("nfs_ctime"), U64.withName("nfs_atime_nsec"),
      U64.withName("nfs_mtime_nsec"), U64.withName("nfs_ctime_nsec"), U64.withName("nfs_used"));

  /** {@code struct pollfd { int fd; short events; short revents; }}. */
  static final StructLayout POLLFD = structLayout(
      U32.withName("fd"), ValueLayout.JAVA_SHORT.withName("events"), ValueLayout.JAVA_SHORT.withName("revents"));

  /**
   * {@code struct nfs_fh { int len; char *val; }} from libnfs 4.0's include/libnfs-private.h: what
   * {@code nfs_get_fh} returns a pointer to (its public header leaves the type incomplete).
   */
  static final StructLayout NFS_FH = structLayout(
      U32.withName("len"), paddingLayout(4), ValueLayout.ADDRESS.withName("val"));

  static long offset(StructLayout layout, String... path) {
    java.lang.foreign.MemoryLayout.PathElement[] p = new java.lang.foreign.MemoryLayout.PathElement[path.length];
    for (int i = 0; i < path.length; i++) {
      p[i] = groupElement(path[i]);
    }
    return layout.byteOffset(p);
  }

  // Offsets NfsClient uses, computed once from the layouts above.
  static final long ARGS_DIR_LEN = offset(CREATE3ARGS, "where", "dir", "data", "data_len");
  static final long ARGS_DIR_VAL = offset(CREATE3ARGS, "where", "dir", "data", "data_val");
  static final long ARGS_NAME = offset(CREATE3ARGS, "where", "name");
  static final long ARGS_MODE = offset(CREATE3ARGS, "how", "mode");
  static final long ARGS_VERF = offset(CREATE3ARGS, "how", "createhow3_u", "verf");
  static final long RES_STATUS = offset(CREATE3RES, "status");
  static final long FH_LEN = offset(NFS_FH, "len");
  static final long FH_VAL = offset(NFS_FH, "val");
  static final long POLL_FD = offset(POLLFD, "fd");
  static final long POLL_EVENTS = offset(POLLFD, "events");
  static final long POLL_REVENTS = offset(POLLFD, "revents");
}
