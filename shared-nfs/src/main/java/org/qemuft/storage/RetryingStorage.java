package org.qemuft.storage;

import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import org.qemuft.storage.Backend.Failure;
import org.qemuft.storage.Backend.Failure.Kind;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link SharedStorage} on top of a {@link Backend}: retries while the storage does not answer,
 * and builds every operation so that a repeated request whose first reply was lost (or that
 * completed after it timed out) still yields the true result. The reasoning per operation is in
 * docs/shared-storage.md.
 */
final class RetryingStorage implements SharedStorage {
  private static final Logger LOG = LoggerFactory.getLogger(SharedStorage.class);
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final Duration FIRST_BACKOFF = Duration.ofMillis(50);
  private static final Duration MAX_BACKOFF = Duration.ofSeconds(1);

  private final Backend backend;
  private final StorageOptions options;

  RetryingStorage(Backend backend, StorageOptions options) {
    this.backend = backend;
    this.options = options;
  }

  @Override
  public String location() {
    return backend.location();
  }

  @Override
  public String describe() {
    return backend.kind() + " " + backend.location();
  }

  @Override
  public boolean createExclusive(String name, byte[] verifier, byte[] content) throws StorageException {
    Names.check(name);
    Verifiers.check(verifier);
    checkSize(name, content);
    // 1. The test-and-set: an exclusive create with our verifier. A repeat after a lost reply is
    //    answered as success by the server as long as the file is empty and holds the verifier.
    // 2. Once the create has succeeded the name is ours for good (lock files are never removed),
    //    so later attempts only repeat the write, which is idempotent (same bytes, offset 0). Not
    //    repeating the create matters: our own write ends the verifier, after which the server
    //    would answer EXISTS to it.
    boolean[] created = {false};
    return retry("create exclusive", name, () -> {
      if (!created[0]) {
        try {
          createExclusiveWithParents(name, verifier);
        } catch (Failure f) {
          if (f.kind() == Kind.EXISTS) {
            return false;
          }
          throw f;
        }
        created[0] = true;
      }
      backend.writeInto(name, content);
      return true;
    });
  }

  @Override
  public Optional<byte[]> createVerifier(String name) throws StorageException {
    Names.check(name);
    Optional<Backend.Id> id = retry("stat", name, () -> backend.stat(name));
    if (id.isEmpty() || id.get().directory() || id.get().size() != 0) {
      return Optional.empty();
    }
    return Verifiers.fromTimes(id.get().atimeSeconds(), id.get().mtimeSeconds());
  }

  @Override
  public Optional<byte[]> read(String name) throws StorageException {
    Names.check(name);
    return retry("read", name, () -> backend.read(name, MAX_FILE_BYTES));
  }

  @Override
  public void write(String name, byte[] content) throws StorageException {
    Names.check(name);
    checkSize(name, content);
    String tag = tag();
    List<String> temps = new ArrayList<>();
    try {
      retry("write", name, () -> {
        String t = Names.temp(name, "write", tag + "-" + temps.size());
        temps.add(t);
        createWithParents(t, content);
        backend.rename(t, name);
        return null;
      });
    } finally {
      // The last temporary file was renamed; earlier ones may linger after lost replies.
      removeQuietly(temps);
    }
  }

  @Override
  public boolean exists(String name) throws StorageException {
    Names.check(name);
    return retry("stat", name, () -> backend.stat(name)).isPresent();
  }

  @Override
  public List<String> list(String dir) throws StorageException {
    if (!dir.isEmpty()) {
      Names.check(dir);
    }
    List<String> names = new ArrayList<>(retry("list", dir.isEmpty() ? "/" : dir, () -> backend.list(dir))
        .orElse(List.of()));
    names.removeIf(Names::isTemp);
    names.sort(null);
    return names;
  }

  @Override
  public boolean delete(String name) throws StorageException {
    Names.check(name);
    return retry("delete", name, () -> {
      Optional<Backend.Id> id = backend.stat(name);
      if (id.isEmpty()) {
        return false;
      }
      try {
        if (id.get().directory()) {
          backend.rmdir(name);
        } else {
          backend.unlink(name);
        }
        return true;
      } catch (Failure f) {
        if (f.kind() == Kind.NOT_FOUND) {
          return false;
        }
        if (f.kind() == Kind.NOT_EMPTY) {
          throw new Failure(Kind.OTHER, "directory " + name + " is not empty; remove what is in it first", f);
        }
        throw f;
      }
    });
  }

  @Override
  public void createDirectories(String dir) throws StorageException {
    Names.check(dir);
    retry("mkdir", dir, () -> {
      mkdirs(dir);
      return null;
    });
  }

  @Override
  public String qemuLocation(String name) {
    return backend.qemuLocation(Names.check(name));
  }

  @Override
  public void close() {
    backend.close();
  }

  @Override
  public String toString() {
    return "shared storage (" + describe() + ")";
  }

  // ---------------------------------------------------------------------------------------------

  @FunctionalInterface
  private interface Attempt<T> {
    T run() throws Failure;
  }

  /**
   * Runs {@code attempt} until it gets an answer: NO_ANSWER means reconnect, wait and try again
   * until the wait limit; any other failure is final.
   */
  private <T> T retry(String op, String name, Attempt<T> attempt) throws StorageException {
    long start = System.nanoTime();
    long deadline = start + options.waitLimit().toNanos();
    long backoff = FIRST_BACKOFF.toNanos();
    int attempts = 0;
    while (true) {
      attempts++;
      try {
        T result = attempt.run();
        if (attempts > 1) {
          LOG.info("shared storage ({}) answered again: {} {} succeeded after {} attempts in {} ms",
              describe(), op, name, attempts, (System.nanoTime() - start) / 1_000_000);
        }
        return result;
      } catch (Failure f) {
        if (f.kind() != Kind.NO_ANSWER) {
          throw new StorageException(describe() + ": " + op + " " + name + " failed: " + f.getMessage(), f);
        }
        backend.reset();
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new StorageUnavailableException(describe() + ": " + op + " " + name + " got no answer for "
              + (System.nanoTime() - start) / 1_000_000 + " ms (" + attempts + " attempts, wait limit "
              + options.waitLimit().toMillis() + " ms). Last error: " + f.getMessage()
              + ". The shared storage is unreachable: check the NFS server and the network to it."
              + " Nothing was assumed about the outcome; calling again is safe.", f);
        }
        if (attempts == 1) {
          LOG.warn("shared storage ({}) did not answer {} {}: {}; retrying for up to {} ms",
              describe(), op, name, f.getMessage(), options.waitLimit().toMillis());
        }
        sleep(Math.min(backoff, left));
        backoff = Math.min(backoff * 2, MAX_BACKOFF.toNanos());
      }
    }
  }

  /** One exclusive create, creating missing parent directories first if needed. */
  private void createExclusiveWithParents(String file, byte[] verifier) throws Failure {
    try {
      backend.createExclusive(file, verifier);
    } catch (Failure f) {
      String parent = Names.parent(file);
      if (f.kind() != Kind.NOT_FOUND || parent.isEmpty()) {
        throw f;
      }
      mkdirs(parent);
      backend.createExclusive(file, verifier);
    }
  }

  /** One attempt at creating a new file, creating missing parent directories first if needed. */
  private void createWithParents(String file, byte[] content) throws Failure {
    try {
      backend.createFile(file, content);
    } catch (Failure f) {
      String parent = Names.parent(file);
      if (f.kind() != Kind.NOT_FOUND || parent.isEmpty()) {
        throw f;
      }
      mkdirs(parent);
      backend.createFile(file, content);
    }
  }

  private void mkdirs(String dir) throws Failure {
    Optional<Backend.Id> id = backend.stat(dir);
    if (id.isPresent()) {
      if (!id.get().directory()) {
        throw new Failure(Kind.OTHER, dir + " exists and is not a directory", null);
      }
      return;
    }
    String parent = Names.parent(dir);
    if (!parent.isEmpty()) {
      mkdirs(parent);
    }
    try {
      backend.mkdir(dir);
    } catch (Failure f) {
      if (f.kind() != Kind.EXISTS) {
        throw f;
      }
      // Made by someone else meanwhile, or by our own earlier attempt whose reply was lost.
    }
  }

  /**
   * Best effort, one attempt each, stopping at the first that gets no answer: leftovers are hidden
   * from listings and harmless.
   */
  private void removeQuietly(List<String> names) {
    for (String n : names) {
      try {
        backend.unlink(n);
      } catch (Failure f) {
        if (f.kind() == Kind.NO_ANSWER) {
          LOG.debug("left temporary files {} in {}: storage did not answer", names, describe());
          backend.reset();
          return;
        }
        if (f.kind() != Kind.NOT_FOUND) {
          LOG.debug("could not remove temporary file {} of {}: {}", n, describe(), f.getMessage());
        }
      }
    }
  }

  private void checkSize(String name, byte[] content) {
    if (content.length > MAX_FILE_BYTES) {
      throw new IllegalArgumentException("content for " + name + " is " + content.length
          + " bytes; shared storage files are limited to " + MAX_FILE_BYTES);
    }
  }

  private static String tag() {
    byte[] b = new byte[8];
    RANDOM.nextBytes(b);
    return HexFormat.of().formatHex(b);
  }

  private static void sleep(long nanos) throws StorageUnavailableException {
    try {
      Thread.sleep(Duration.ofNanos(nanos));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StorageUnavailableException("interrupted while waiting for shared storage to answer", e);
    }
  }
}
