package org.qemuft.nativeio.nfs;

/**
 * Attributes of one file as the NFS server reports them (libnfs's {@code struct nfs_stat_64}).
 *
 * @param fileId the server's file id (inode number): equal ids in one export mean one file
 * @param mode type and permission bits as in {@code st_mode}
 * @param links hard link count
 * @param size size in bytes
 * @param atimeNanos access time, nanoseconds since the epoch
 * @param mtimeNanos modification time, nanoseconds since the epoch
 */
public record NfsStat(long fileId, int mode, long links, long size, long atimeNanos, long mtimeNanos) {
  private static final int S_IFMT = 0170000;
  private static final int S_IFDIR = 0040000;
  private static final int S_IFREG = 0100000;

  public boolean isDirectory() {
    return (mode & S_IFMT) == S_IFDIR;
  }

  public boolean isRegularFile() {
    return (mode & S_IFMT) == S_IFREG;
  }

  /** The access time's whole seconds, as the server sent them (NFSv3: an unsigned 32-bit number). */
  public long atimeSeconds() {
    return Math.floorDiv(atimeNanos, 1_000_000_000L);
  }

  /** The modification time's whole seconds, as the server sent them. */
  public long mtimeSeconds() {
    return Math.floorDiv(mtimeNanos, 1_000_000_000L);
  }
}
