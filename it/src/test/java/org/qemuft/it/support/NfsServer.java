package org.qemuft.it.support;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A real NFS server for a test class: Debian's nfs-ganesha (FSAL VFS) serving NFSv3 over TCP on
 * 127.0.0.1 from a temporary export directory, registered with the machine's rpcbind (which QEMU's
 * and libnfs's nfs:// clients ask for the ports). Register it with
 * {@code @RegisterExtension static final NfsServer NFS = new NfsServer();}: it starts before the
 * first test and is stopped, and its directory removed, after the last (also when tests fail,
 * and by a JVM shutdown hook if the JVM dies first).
 *
 * <p>If no rpcbind answers on 127.0.0.1:111 it starts one and stops it again afterwards; an
 * rpcbind that was already there is left alone. It refuses to start if another live NFS server is
 * registered with rpcbind (one rpcbind maps program 100003 to one port).
 *
 * <p>Faults: {@link #kill()} (SIGKILL, like a crash), {@link #stop()} (clean), {@link #freeze()}
 * (SIGSTOP: connections stay up and nothing answers), {@link #thaw()}, {@link #start()} again on
 * the same ports and export. Needs root.
 */
public final class NfsServer implements BeforeAllCallback, AfterAllCallback, AutoCloseable {
  private static final Duration READY = Duration.ofSeconds(60);
  private static final int NFS_PROGRAM = 100003;
  private static final int MOUNT_PROGRAM = 100005;

  private Path dir;
  private Path export;
  private int nfsPort;
  private int mountPort;
  private Process ganesha;
  private Process rpcbind;
  private boolean frozen;
  private Thread hook;

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    setUp();
  }

  @Override
  public void afterAll(ExtensionContext context) {
    close();
  }

  /** Creates the export and config and starts rpcbind (if needed) and ganesha. */
  public synchronized void setUp() throws IOException, InterruptedException {
    if (dir != null) {
      return;
    }
    dir = Files.createTempDirectory("qemuft-nfs-");
    export = Files.createDirectory(dir.resolve("export"));
    Files.createDirectory(dir.resolve("recovery"));
    nfsPort = freePort();
    mountPort = freePort();
    hook = new Thread(this::close, "nfs-server-cleanup");
    Runtime.getRuntime().addShutdownHook(hook);
    ensureRpcbind();
    Files.writeString(dir.resolve("ganesha.conf"), config(), StandardCharsets.UTF_8);
    start();
  }

  /** The exported directory on this host (what the server serves). */
  public Path exportDir() {
    return export;
  }

  /** {@code nfs://127.0.0.1/EXPORT}. */
  public String url() {
    return "nfs://127.0.0.1" + export;
  }

  /** {@code nfs://127.0.0.1/EXPORT/relative}. */
  public String url(String relative) {
    return url() + "/" + relative;
  }

  public int nfsPort() {
    return nfsPort;
  }

  public synchronized boolean isRunning() {
    return ganesha != null && ganesha.isAlive();
  }

  /** Starts ganesha (again) on the same ports and export; returns when it serves. */
  public synchronized void start() throws IOException, InterruptedException {
    if (isRunning()) {
      return;
    }
    removeStaleRegistrations();
    ganesha = new ProcessBuilder("ganesha.nfsd", "-F", "-f", dir.resolve("ganesha.conf").toString(),
        "-L", dir.resolve("ganesha.log").toString(), "-p", dir.resolve("ganesha.pid").toString(),
        "-N", "NIV_EVENT")
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("ganesha.out").toFile()))
        .start();
    frozen = false;
    long deadline = System.nanoTime() + READY.toNanos();
    while (!(portOpen(nfsPort) && registered(NFS_PROGRAM, nfsPort) && registered(MOUNT_PROGRAM, mountPort))) {
      if (!ganesha.isAlive()) {
        throw new IOException("nfs-ganesha exited with status " + ganesha.exitValue() + " while starting; "
            + logTail());
      }
      if (System.nanoTime() > deadline) {
        throw new IOException("nfs-ganesha did not serve NFS on 127.0.0.1:" + nfsPort + " within "
            + READY.toSeconds() + " s; " + logTail());
      }
      Thread.sleep(100);
    }
  }

  /** Crashes the server: SIGKILL, no clean shutdown. Returns when it is gone. */
  public synchronized void kill() throws InterruptedException {
    if (ganesha != null) {
      ganesha.destroyForcibly();
      ganesha.waitFor();
      frozen = false;
    }
  }

  /** Stops the server cleanly (SIGTERM; SIGKILL after 15 s). */
  public synchronized void stop() throws InterruptedException {
    if (ganesha == null || !ganesha.isAlive()) {
      return;
    }
    if (frozen) {
      try {
        thaw();
      } catch (IOException e) {
        ganesha.destroyForcibly(); // SIGKILL works on a stopped process too
      }
    }
    ganesha.destroy();
    if (!ganesha.waitFor(15, TimeUnit.SECONDS)) {
      ganesha.destroyForcibly();
      ganesha.waitFor();
    }
  }

  /** Freezes the server (SIGSTOP): its sockets stay open, nothing is answered. */
  public synchronized void freeze() throws IOException, InterruptedException {
    signal("STOP");
    frozen = true;
  }

  /** Resumes a frozen server (SIGCONT). */
  public synchronized void thaw() throws IOException, InterruptedException {
    signal("CONT");
    frozen = false;
  }

  /** ganesha's log so far. */
  public String log() {
    try {
      return Files.readString(dir.resolve("ganesha.log"), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "";
    }
  }

  /** Stops ganesha, the rpcbind this object started (if any) and removes the directory. */
  @Override
  public synchronized void close() {
    if (dir == null) {
      return;
    }
    try {
      stop();
    } catch (InterruptedException e) {
      ganesha.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try {
      removeStaleRegistrations();
    } catch (IOException | InterruptedException e) {
      // best effort: rpcbind may be gone already
    }
    if (rpcbind != null) {
      rpcbind.destroy();
      try {
        if (!rpcbind.waitFor(10, TimeUnit.SECONDS)) {
          rpcbind.destroyForcibly();
        }
      } catch (InterruptedException e) {
        rpcbind.destroyForcibly();
        Thread.currentThread().interrupt();
      }
      rpcbind = null;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      // leave it: it is under the temp directory
    }
    dir = null;
    if (hook != null && Thread.currentThread() != hook) {
      try {
        Runtime.getRuntime().removeShutdownHook(hook);
      } catch (IllegalStateException e) {
        // JVM shutting down
      }
    }
  }

  private void signal(String sig) throws IOException, InterruptedException {
    if (ganesha == null || !ganesha.isAlive()) {
      throw new IllegalStateException("nfs-ganesha is not running");
    }
    TestNet.run("kill", "-" + sig, Long.toString(ganesha.pid()));
  }

  private String config() {
    // NFSv3 over TCP only; no NLM/RQUOTA (qemu-ft uses neither); no grace period (nothing to
    // recover for NFSv3 without locks); attributes and directory entries not cached, because tests
    // also look at the export directory directly.
    return """
        NFS_CORE_PARAM {
          Bind_addr = 127.0.0.1;
          NFS_Port = %d;
          MNT_Port = %d;
          Enable_NLM = false;
          Enable_RQUOTA = false;
          Protocols = 3;
        }
        NFSv4 { Graceless = true; RecoveryRoot = %s; }
        NFS_KRB5 { Active_krb5 = false; }
        MDCACHE { Dir_Chunk = 0; }
        EXPORT {
          Export_Id = 1;
          Path = %s;
          Pseudo = %s;
          Protocols = 3;
          Transports = TCP;
          Access_Type = RW;
          Squash = No_Root_Squash;
          SecType = sys;
          Attr_Expiration_Time = 0;
          FSAL { Name = VFS; }
        }
        """.formatted(nfsPort, mountPort, dir.resolve("recovery"), export, export);
  }

  private void ensureRpcbind() throws IOException, InterruptedException {
    if (portOpen(111)) {
      return;
    }
    rpcbind = new ProcessBuilder("rpcbind", "-f")
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("rpcbind.out").toFile()))
        .start();
    long deadline = System.nanoTime() + READY.toNanos();
    while (!portOpen(111)) {
      if (!rpcbind.isAlive() || System.nanoTime() > deadline) {
        throw new IOException("could not start rpcbind (is the rpcbind package installed? scripts/setup installs it): "
            + Files.readString(dir.resolve("rpcbind.out")).strip());
      }
      Thread.sleep(50);
    }
  }

  /** rpcinfo lines "program vers proto port service". */
  private static List<String[]> registrations() throws IOException {
    String out = TestNet.run("rpcinfo", "-p", "127.0.0.1");
    return out.lines().skip(1).map(l -> l.trim().split("\\s+")).filter(f -> f.length >= 4).toList();
  }

  private static boolean registered(int program, int port) throws IOException {
    return registrations().stream()
        .anyMatch(f -> f[0].equals(Integer.toString(program)) && f[2].equals("tcp") && f[3].equals(Integer.toString(port)));
  }

  /**
   * Drops NFS and MOUNT registrations whose port nobody serves (left by a killed server); refuses
   * to touch those of a live server that is not ours.
   */
  private void removeStaleRegistrations() throws IOException, InterruptedException {
    for (String[] f : registrations()) {
      int program = Integer.parseInt(f[0]);
      if (program != NFS_PROGRAM && program != MOUNT_PROGRAM) {
        continue;
      }
      int port = Integer.parseInt(f[3]);
      boolean ours = port == nfsPort || port == mountPort;
      if (!ours && f[2].equals("tcp") && portOpen(port)) {
        throw new IOException("another NFS server is registered with rpcbind on 127.0.0.1 (program " + program
            + " on port " + port + "); the tests need their own. Stop it (or wait for the other test run)");
      }
      try {
        TestNet.run("rpcinfo", "-d", "-T", f[2], f[0], f[1]);
      } catch (IOException e) {
        // already removed together with another transport's entry
      }
    }
  }

  private String logTail() {
    String log = log() + "\n" + readQuiet(dir.resolve("ganesha.out"));
    List<String> lines = log.strip().lines().toList();
    return "last lines of " + dir.resolve("ganesha.log") + ":\n  "
        + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
  }

  private static String readQuiet(Path p) {
    try {
      return Files.readString(p);
    } catch (IOException e) {
      return "";
    }
  }

  private static boolean portOpen(int port) {
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress("127.0.0.1", port), 500);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }
}
