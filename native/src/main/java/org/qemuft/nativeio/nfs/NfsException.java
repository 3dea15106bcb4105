package org.qemuft.nativeio.nfs;

import java.io.IOException;
import java.util.Map;

/**
 * A libnfs call failed. Names the server and export, the operation, the path inside the export,
 * the errno libnfs returned and libnfs's own text (which carries the NFS status the server
 * answered, e.g. {@code NFS3ERR_EXIST}, or "Command timed out").
 *
 * <p>{@link #serverAnswered()} tells a definite answer from the server (the file exists, access
 * denied, ...) from a failure to get one (timeout, connection refused or lost): only the latter
 * may be retried blindly, and only where the operation is safe to repeat.
 */
public final class NfsException extends IOException {
  private static final long serialVersionUID = 1L;

  public static final int EPERM = 1;
  public static final int ENOENT = 2;
  public static final int EINTR = 4;
  public static final int EIO = 5;
  public static final int EAGAIN = 11;
  public static final int EACCES = 13;
  public static final int EFAULT = 14;
  public static final int EEXIST = 17;
  public static final int EXDEV = 18;
  public static final int ENOTDIR = 20;
  public static final int EISDIR = 21;
  public static final int EINVAL = 22;
  public static final int EFBIG = 27;
  public static final int ENOSPC = 28;
  public static final int EROFS = 30;
  public static final int EMLINK = 31;
  public static final int ENAMETOOLONG = 36;
  public static final int ENOTEMPTY = 39;
  public static final int ENOTSUP = 95;
  public static final int ETIMEDOUT = 110;
  public static final int ESTALE = 116;
  public static final int EDQUOT = 122;

  private static final Map<Integer, String> NAMES = Map.ofEntries(
      Map.entry(EPERM, "EPERM"), Map.entry(ENOENT, "ENOENT"), Map.entry(EINTR, "EINTR"),
      Map.entry(EIO, "EIO"), Map.entry(EAGAIN, "EAGAIN"), Map.entry(EACCES, "EACCES"), Map.entry(EFAULT, "EFAULT"),
      Map.entry(EEXIST, "EEXIST"), Map.entry(EXDEV, "EXDEV"), Map.entry(ENOTDIR, "ENOTDIR"),
      Map.entry(EISDIR, "EISDIR"), Map.entry(EINVAL, "EINVAL"), Map.entry(EFBIG, "EFBIG"),
      Map.entry(ENOSPC, "ENOSPC"), Map.entry(EROFS, "EROFS"), Map.entry(EMLINK, "EMLINK"),
      Map.entry(ENAMETOOLONG, "ENAMETOOLONG"), Map.entry(ENOTEMPTY, "ENOTEMPTY"), Map.entry(ENOTSUP, "ENOTSUP"),
      Map.entry(ETIMEDOUT, "ETIMEDOUT"), Map.entry(ESTALE, "ESTALE"), Map.entry(EDQUOT, "EDQUOT"));

  /** Errnos that libnfs derives from an NFS status the server sent: a definite answer. */
  private static final java.util.Set<Integer> ANSWERS = java.util.Set.of(EPERM, ENOENT, EACCES,
      EEXIST, EXDEV, ENOTDIR, EISDIR, EINVAL, EFBIG, ENOSPC, EROFS, EMLINK, ENAMETOOLONG,
      ENOTEMPTY, ENOTSUP, EDQUOT);

  private final String target;
  private final String operation;
  private final String path;
  private final int errno;
  private final String libnfsText;

  NfsException(String target, String operation, String path, int errno, String libnfsText) {
    super(operation + " " + path + " on " + target + " failed: " + name(errno) + " ("
        + (libnfsText == null || libnfsText.isBlank() ? "libnfs gave no detail" : libnfsText.strip())
        + ")" + hint(errno));
    this.target = target;
    this.operation = operation;
    this.path = path;
    this.errno = errno;
    this.libnfsText = libnfsText == null ? "" : libnfsText;
  }

  /** {@code nfs://server/export}. */
  public String target() {
    return target;
  }

  public String operation() {
    return operation;
  }

  /** The path inside the export. */
  public String path() {
    return path;
  }

  /** The positive errno libnfs returned (e.g. {@link #EEXIST}). */
  public int errno() {
    return errno;
  }

  public String errnoName() {
    return name(errno);
  }

  /** libnfs's own error text (nfs_get_error). */
  public String libnfsText() {
    return libnfsText;
  }

  /**
   * True if libnfs's errno came from an NFS status in the server's reply; false for a timeout,
   * a lost or refused connection, or anything else where the server's verdict is unknown.
   */
  public boolean serverAnswered() {
    return ANSWERS.contains(errno);
  }

  static String name(int errno) {
    String n = NAMES.get(errno);
    return n != null ? n : "errno " + errno;
  }

  private static String hint(int errno) {
    return switch (errno) {
      case EINTR -> " - libnfs reports an RPC that got no reply within the timeout this way;"
          + " is the NFS server up and reachable?";
      case EFAULT -> " - the RPC connection failed; is the NFS server up and reachable?";
      case EACCES, EPERM -> " - check the export's access list and squash settings";
      case ENOTSUP -> " - the server does not support this operation (an NFSv3 EXCLUSIVE create needs a"
          + " server that keeps create verifiers, such as nfs-ganesha or the Linux kernel server)";
      case EAGAIN -> " - the server asked to try again later (NFS3ERR_JUKEBOX)";
      default -> "";
    };
  }
}
