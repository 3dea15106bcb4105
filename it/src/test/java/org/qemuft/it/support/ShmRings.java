package org.qemuft.it.support;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import org.qemuft.nativeio.LogRing;

/**
 * Log rings for one test: a private directory in /dev/shm (named qemuft-it-...), removed with
 * everything in it on {@link #close()}, also when the test failed.
 */
public final class ShmRings implements AutoCloseable {
  private final Path dir;

  public ShmRings() throws IOException {
    dir = Files.createTempDirectory(Path.of("/dev/shm"), "qemuft-it-");
  }

  /** Creates ring {@code name} in this test's directory. */
  public LogRing create(String name, long capacity) throws IOException {
    return LogRing.create(dir.resolve(name), capacity);
  }

  public Path path(String name) {
    return dir.resolve(name);
  }

  /** libftshim as built by the native module (system property qemuft.shim). */
  public static Path shimLibrary() {
    String p = System.getProperty("qemuft.shim");
    if (p == null) {
      throw new IllegalStateException("system property qemuft.shim is not set (run the tests through Maven)");
    }
    Path lib = Path.of(p);
    if (!Files.isRegularFile(lib)) {
      throw new IllegalStateException(lib + " is missing: build the native module first");
    }
    return lib;
  }

  @Override
  public void close() throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
