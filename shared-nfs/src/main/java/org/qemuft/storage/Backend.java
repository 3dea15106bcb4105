package org.qemuft.storage;

import java.util.List;
import java.util.Optional;

/**
 * One backend's single-attempt primitives. Each either does its one thing, reports a definite
 * answer as a {@link Failure} of a {@link Failure.Kind} other than NO_ANSWER, or reports NO_ANSWER
 * when the storage did not answer (the effect is then unknown). {@link RetryingStorage} builds the
 * public, retry-safe operations on top.
 */
interface Backend extends AutoCloseable {

  /**
   * A file's identity, kind, size and times (whole seconds; an empty file made by {@link
   * #createExclusive} keeps its verifier there, see {@link Verifiers}).
   */
  record Id(long fileId, long links, boolean directory, long size, long atimeSeconds, long mtimeSeconds) {}

  /** "mounted directory" or "libnfs". */
  String kind();

  /** The location as the user gave it, normalised. */
  String location();

  Optional<Id> stat(String name) throws Failure;

  /** Creates {@code name} with {@code data}, durable before returning; EXISTS if it exists. */
  void createFile(String name, byte[] data) throws Failure;

  /**
   * The exclusive create with a verifier (NFSv3 CREATE EXCLUSIVE, or its equivalent): creates
   * {@code name} empty and keeps {@code verifier} with it. Succeeds also when {@code name} exists,
   * is empty and still holds this verifier (what a server answers to a retransmission); EXISTS
   * otherwise; NOT_FOUND if the parent directory is missing.
   */
  void createExclusive(String name, byte[] verifier) throws Failure;

  /** Writes {@code data} into the existing file {@code name} from offset 0, durable before returning. */
  void writeInto(String name, byte[] data) throws Failure;

  /** Atomically replaces {@code to} by {@code from}. */
  void rename(String from, String to) throws Failure;

  Optional<byte[]> read(String name, int maxBytes) throws Failure;

  /** Removes a file; NOT_FOUND if absent. */
  void unlink(String name) throws Failure;

  /** Creates one directory; EXISTS if it exists. */
  void mkdir(String name) throws Failure;

  /** Removes an empty directory; NOT_FOUND if absent, NOT_EMPTY if not empty. */
  void rmdir(String name) throws Failure;

  /** Names in a directory (including temporary ones); empty if the directory is absent. */
  Optional<List<String>> list(String dir) throws Failure;

  /** The location QEMU opens for {@code name} ({@code -drive file=}). */
  String qemuLocation(String name);

  /** Drops any connection after NO_ANSWER, so the next attempt starts afresh. */
  void reset();

  @Override
  void close();

  /** A failed primitive. */
  final class Failure extends Exception {
    private static final long serialVersionUID = 1L;

    enum Kind { EXISTS, NOT_FOUND, NOT_EMPTY, NO_ANSWER, OTHER }

    private final Kind kind;

    Failure(Kind kind, String message, Throwable cause) {
      super(message, cause);
      this.kind = kind;
    }

    Kind kind() {
      return kind;
    }
  }
}
