package org.qemuft.nativeio.nfs;

/**
 * Attributes of one file as the NFS server reports them (libnfs's {@code struct nfs_stat_64}).
 *
 * @param fileId the server's file id (inode number): equal ids in one export mean one file
 * @param mode type and permission bits as in {@code st_mode}
 * @param links hard link count
 * @param size size in bytes
 * @param mtimeNanos modification time, nanoseconds since the epoch
 */
public record NfsStat(long fileId, int mode, long links, long size, long mtimeNanos) {
  private static final int S_IFMT = 0170000;
  private static final int S_IFDIR = 0040000;
  private static final int S_IFREG = 0100000;

  public boolean isDirectory() {
    return (mode & S_IFMT) == S_IFDIR;
  }

  public boolean isRegularFile() {
    return (mode & S_IFMT) == S_IFREG;
  }
}
