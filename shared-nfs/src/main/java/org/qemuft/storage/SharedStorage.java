package org.qemuft.storage;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The shared storage of a protected VM pair (design step 7): a directory that every host of the
 * pair reaches, holding disk images, per-VM per-epoch overlays and the go-live lock records.
 *
 * <p>Two backends, chosen by the location string:
 * <ul>
 *   <li>{@code nfs://SERVER/EXPORTED/DIRECTORY}: NFSv3 through libnfs in user space, no kernel
 *       mount needed (QEMU's own {@code nfs://} block driver reaches images the same way);
 *   <li>an absolute path: a directory of this host, normally a kernel NFS mount of the share.
 * </ul>
 *
 * <p>Names are relative and '/'-separated; each part is letters, digits, '.', '_', '-' and does
 * not start with '.' or '-' (names starting with '.' are temporary files of this library and are
 * never listed). Files are small and read and written whole. Every operation retries while the
 * storage does not answer, for up to {@link StorageOptions#waitLimit()}, then throws {@link
 * StorageUnavailableException}; each is written so that a retried request whose first reply was
 * lost still gives the true result. Implementations are thread-safe.
 */
public interface SharedStorage extends AutoCloseable {
  /** The largest file {@link #read} accepts: these are records, not images. */
  int MAX_FILE_BYTES = 1 << 20;

  /**
   * Opens shared storage at {@code location} ({@code nfs://server/dir} or an absolute path to an
   * existing directory). Does not contact an NFS server yet; the first operation does.
   *
   * @throws IllegalArgumentException naming what is wrong with the location
   */
  static SharedStorage open(String location, StorageOptions options) {
    Objects.requireNonNull(location, "location");
    Objects.requireNonNull(options, "options");
    String loc = location.strip();
    if (loc.startsWith("nfs://")) {
      return new RetryingStorage(NfsBackend.parse(loc, options.rpcTimeout()), options);
    }
    if (loc.contains("://")) {
      throw new IllegalArgumentException("shared storage location '" + location
          + "' must be nfs://SERVER/EXPORTED/DIRECTORY or an absolute directory path");
    }
    Path p = Path.of(loc);
    if (!p.isAbsolute()) {
      throw new IllegalArgumentException("shared storage location '" + location + "' must be an absolute path"
          + " (or nfs://SERVER/EXPORTED/DIRECTORY)");
    }
    if (!java.nio.file.Files.isDirectory(p)) {
      throw new IllegalArgumentException("shared storage directory " + p + " does not exist or is not a directory"
          + " (is the NFS share mounted there?)");
    }
    return new RetryingStorage(new DirectoryBackend(p, options.rpcTimeout()), options);
  }

  /** The location, normalised: what {@link #open} was given. */
  String location();

  /** Which backend serves this storage and where, for messages: e.g. "libnfs nfs://h/exp". */
  String describe();

  /**
   * The atomic test-and-set: creates {@code name} holding exactly {@code content} if and only if
   * no file of that name exists, and tells whether this call created it. The content is complete
   * from the instant the name exists: a reader never sees the name empty or half-written.
   * Parent directories are created as needed. (How: the content goes into a unique temporary file
   * first, which is then hard-linked to {@code name}; see docs/shared-storage.md.)
   *
   * @return true if this call created {@code name}; false if it existed already (made by anyone,
   *     including an earlier call of this process)
   */
  boolean createExclusive(String name, byte[] content) throws StorageException;

  /** The whole content of {@code name}, or empty if there is no such file. */
  Optional<byte[]> read(String name) throws StorageException;

  /**
   * Replaces {@code name} by a file holding {@code content}, atomically: readers see the old or
   * the new content, never a mixture. Parent directories are created as needed.
   */
  void write(String name, byte[] content) throws StorageException;

  /** True if {@code name} exists (file or directory). */
  boolean exists(String name) throws StorageException;

  /**
   * The names directly inside directory {@code dir} ("" for the top), sorted, without temporary
   * files; empty if the directory does not exist.
   */
  List<String> list(String dir) throws StorageException;

  /**
   * Removes file {@code name}, or directory {@code name} if it is empty.
   *
   * @return false if it did not exist (or a retried removal had already taken effect)
   * @throws StorageException if it is a directory that is not empty
   */
  boolean delete(String name) throws StorageException;

  /** Creates directory {@code dir} and its parents if missing. */
  void createDirectories(String dir) throws StorageException;

  /**
   * Where QEMU and qemu-img find {@code name}: a path for a mounted directory, an {@code nfs://}
   * URL (QEMU's libnfs block driver) for the libnfs backend. Does not check that it exists.
   */
  String qemuLocation(String name);

  /** Closes connections; further calls fail. */
  @Override
  void close();
}
