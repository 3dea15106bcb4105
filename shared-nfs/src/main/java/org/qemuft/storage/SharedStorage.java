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
   * The atomic test-and-set: an exclusive create of {@code name} with {@code verifier} (NFSv3
   * CREATE EXCLUSIVE on the libnfs backend, open(O_CREAT|O_EXCL) on a mounted directory), and if
   * that succeeds, {@code content} is written into the new file and committed. The server decides
   * who creates the name, atomically; there is no check-then-create. Parent directories are
   * created as needed.
   *
   * <p>Between the create and the write the file exists and is empty, with the verifier in its
   * attributes ({@link #createVerifier}); a caller that needs the content must wait for it.
   *
   * <p>Repeating a call that got no answer is safe: the server answers a repeated create with the
   * same verifier as a success while the file is empty and holds it, any other verifier gets
   * "exists". So a caller that created the name but lost the answer learns it on the repeat, and
   * nobody else ever does. Once an earlier call's write has landed, the server no longer matches
   * the verifier and this method returns false; callers that must know compare the content (the
   * go-live lock compares its claim id).
   *
   * @param verifier 8 bytes unique to this claimant (2^-60 chance of two being equal is the only
   *     way two claimants could both succeed); each half, bytes 0-3 and 4-7 read as little-endian
   *     numbers, must be below 2^30 so that servers store it intact and it cannot be mistaken for
   *     a time ({@code IllegalArgumentException} otherwise)
   * @return true if this verifier created {@code name} and {@code content} is now in it; false if
   *     the name exists and the server does not match the verifier
   */
  boolean createExclusive(String name, byte[] verifier, byte[] content) throws StorageException;

  /**
   * The verifier of the exclusive create that made {@code name}, as long as the file is still
   * empty and its times still hold it; empty if the file is absent, has content, or its times are
   * real times (somebody set them, or the create was not an exclusive one by this library). The
   * bytes are in the order nfs-ganesha stores them; a Linux kernel server stores the two 4-byte
   * halves the other way round. Reads attributes only, never the content.
   */
  Optional<byte[]> createVerifier(String name) throws StorageException;

  /**
   * The whole content of {@code name}, or empty if there is no such file. An empty file is
   * recognised by its attributes and not read (reading would change its access time, which holds
   * half of an exclusive create's verifier).
   */
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
