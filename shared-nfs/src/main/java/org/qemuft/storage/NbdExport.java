package org.qemuft.storage;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * A qcow2 image chain on shared storage served to QEMU as a raw disk over NBD on a Unix socket,
 * by a qemu-nbd process this object owns. qemu-nbd opens the image with QEMU's block layer
 * (so {@code nfs://} goes through libnfs, no kernel mount needed) outside record/replay.
 *
 * <p>Why: QEMU 7.2's own {@code nfs://} driver completes requests through replay events, which a
 * replaying QEMU cannot match (the replay hangs), and which deadlock snapshots taken while
 * record/replay is on. A disk reached over NBD behaves like a local one under blkreplay. See
 * docs/shared-storage.md.
 *
 * <p>The export survives client reconnects ({@code --persistent}); {@link #close()} ends qemu-nbd
 * (which flushes the image) and removes the socket.
 */
public final class NbdExport implements AutoCloseable {
  private static final Duration READY = Duration.ofSeconds(60);

  private final Process process;
  private final Path socket;
  private final Path log;
  private final String image;

  private NbdExport(Process process, Path socket, Path log, String image) {
    this.process = process;
    this.socket = socket;
    this.log = log;
    this.image = image;
  }

  /**
   * Starts qemu-nbd serving {@code storage}'s image {@code name} (qcow2, with its backing chain) on
   * {@code socket}; qemu-nbd's messages go to {@code socket + ".log"}.
   *
   * @throws StorageException if qemu-nbd cannot start or does not open the image within 60 s
   */
  public static NbdExport serve(SharedStorage storage, String name, Path socket) throws StorageException {
    Objects.requireNonNull(socket, "socket");
    String image = storage.qemuLocation(Names.check(name));
    Path log = Path.of(socket + ".log");
    List<String> cmd = List.of(System.getProperty("qemuft.qemu-nbd", "qemu-nbd"), "--socket=" + socket,
        "--format=qcow2", "--persistent", "--shared=1", "--cache=writeback", image);
    Process p;
    try {
      Files.deleteIfExists(socket);
      p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
          .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
    } catch (IOException e) {
      throw new StorageException("cannot run qemu-nbd for " + image + " (is qemu-utils installed?): " + e.getMessage(), e);
    }
    NbdExport export = new NbdExport(p, socket, log, image);
    long deadline = System.nanoTime() + READY.toNanos();
    try {
      while (!Files.exists(socket)) {
        if (!p.isAlive() || System.nanoTime() > deadline) {
          String why = export.logText();
          export.close();
          throw new StorageException("qemu-nbd could not serve " + image + " on " + socket + ": "
              + (why.isBlank() ? "no socket after " + READY.toSeconds() + " s" : why));
        }
        Thread.sleep(20);
      }
    } catch (InterruptedException e) {
      export.close();
      Thread.currentThread().interrupt();
      throw new StorageUnavailableException("interrupted while starting qemu-nbd for " + image, e);
    }
    return export;
  }

  /** The location QEMU opens, as a raw disk: {@code nbd:unix:SOCKET}. */
  public String location() {
    return "nbd:unix:" + socket;
  }

  /** The image served. */
  public String image() {
    return image;
  }

  public long pid() {
    return process.pid();
  }

  private String logText() {
    try {
      return Files.readString(log, StandardCharsets.UTF_8).strip();
    } catch (IOException e) {
      return "";
    }
  }

  /** Ends qemu-nbd (SIGTERM; SIGKILL after 10 s) and removes the socket. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor();
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try {
      Files.deleteIfExists(socket);
    } catch (IOException e) {
      // left in a private run directory
    }
  }
}
