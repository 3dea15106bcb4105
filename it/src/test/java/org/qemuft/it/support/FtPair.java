package org.qemuft.it.support;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.controller.status.ControlServer;

/**
 * A protected pair as an operator runs it: two {@code scripts/ftctl run} processes, the primary in
 * the {@link PairNetwork}'s namespace A and the backup in B, configured by YAML files this class
 * writes. {@link #close()} stops both (SIGTERM, then SIGKILL) — also when the test failed — and
 * their QEMUs with them.
 */
public final class FtPair implements AutoCloseable {
  public static final int CHANNEL_PORT = 7700;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final PairNetwork net;
  private final Path dir;
  private final String pairId = "it" + Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000, 0xfffff));
  private final Map<Role, Process> controllers = new EnumMap<>(Role.class);
  private final Map<Role, Path> configs = new EnumMap<>(Role.class);
  private final Map<Role, String> cpus = new EnumMap<>(Role.class);
  private int backupNice;

  /**
   * Writes the pair's configuration for the test guest with {@code kernelArgs} (the guest's address
   * on the LAN is {@link PairNetwork#GUEST_IP}).
   *
   * @param extraYaml further top-level YAML (e.g. a flowControl section), or ""
   * @param primaryDialsAt where the primary dials its backup (normally the backup's channel
   *     address; a test may put a proxy there), "HOST:PORT"
   */
  public FtPair(PairNetwork net, Path dir, String kernelArgs, String extraYaml, String primaryDialsAt)
      throws IOException {
    this.net = net;
    this.dir = dir;
    Files.createDirectories(dir);
    Path secret = dir.resolve("pair.secret");
    byte[] key = new byte[32];
    new SecureRandom().nextBytes(key);
    Files.write(secret, key);
    Files.setPosixFilePermissions(secret, PosixFilePermissions.fromString("rw-------"));
    String backupAt = PairNetwork.BACKUP_CHANNEL_IP + ":" + CHANNEL_PORT;
    for (Role role : Role.values()) {
      String yaml = """
          pair:
            id: %s
            epoch: 1
            secretFile: %s
            primary: {channel: "%s:%d"}
            backup: {channel: "%s"}
          vm:
            kernel: %s
            initrd: %s
            kernelArgs: "%s"
            memoryMiB: 256
            mac: "%s"
            icount: "%s"
          uplink: {tap: %s}
          runtime: {dir: %s}
          %s
          """.formatted(pairId, secret, PairNetwork.PRIMARY_CHANNEL_IP, CHANNEL_PORT,
          role == Role.PRIMARY ? primaryDialsAt : backupAt,
          Guest.dir().resolve("vmlinuz"), Guest.dir().resolve("initrd.img"), kernelArgs, Guest.MAC,
          Guest.ICOUNT, net.tapA, dir.resolve("run"), extraYaml);
      Path f = dir.resolve(role.lower() + ".yaml");
      Files.writeString(f, yaml);
      configs.put(role, f);
    }
  }

  /** The pair with the primary dialling the backup directly. */
  public FtPair(PairNetwork net, Path dir, String kernelArgs, String extraYaml) throws IOException {
    this(net, dir, kernelArgs, extraYaml, PairNetwork.BACKUP_CHANNEL_IP + ":" + CHANNEL_PORT);
  }

  public String pairId() {
    return pairId;
  }

  public Path config(Role role) {
    return configs.get(role);
  }

  /** The controller's run directory (QEMU's files, final-status.json). */
  public Path runDir(Role role) {
    return dir.resolve("run").resolve(pairId).resolve(role.lower());
  }

  /**
   * Runs the backup's controller (and so its QEMU) at this nice level (default 0). On one host
   * the backup's replay competes with the primary for the same cores; a niced backup takes only
   * what the primary leaves, as a backup on another host would (benchmarks).
   */
  public FtPair backupNice(int level) {
    this.backupNice = level;
    return this;
  }

  /**
   * Confines each side's controller (and so its QEMU, which inherits it) to these CPUs, in the
   * kernel's list form ("0", "1"); null, the default, leaves that side unconfined. A core for each
   * side stands in for two hosts on one (benchmarks); {@link #checkCpus()} checks it took.
   */
  public FtPair cpus(String primaryCpus, String backupCpus) {
    cpus.put(Role.PRIMARY, primaryCpus);
    cpus.put(Role.BACKUP, backupCpus);
    return this;
  }

  /**
   * Fails unless every thread of each confined side's controller and of its QEMU (which must be
   * running) may run on exactly that side's CPUs (see {@link #cpus}); does nothing for a side left
   * unconfined.
   */
  public void checkCpus() throws IOException, InterruptedException {
    for (Role role : Role.values()) {
      String list = cpus.get(role);
      if (list != null) {
        CpuAffinity.check(controllers.get(role).pid(), list, "the " + role.lower() + "'s controller");
        CpuAffinity.check(qemuPid(role), list, "the " + role.lower() + "'s QEMU");
      }
    }
  }

  /** Starts the backup's controller, which listens, then the primary's, which connects to it. */
  public void startBoth() throws IOException {
    start(Role.BACKUP);
    start(Role.PRIMARY);
  }

  /** Starts {@code ftctl run} for {@code role} in its host's namespace; returns at once. */
  public Process start(Role role) throws IOException {
    String ns = role == Role.PRIMARY ? net.nsA : net.nsB;
    String nice = Integer.toString(role == Role.BACKUP ? backupNice : 0);
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", ns));
    cmd.addAll(CpuAffinity.prefix(cpus.get(role)));
    cmd.addAll(List.of("nice", "-n", nice, Path.of(System.getProperty("qemuft.root"), "scripts", "ftctl").toString(),
        "run", "--config", configs.get(role).toString(), "--role", role.lower()));
    ProcessBuilder pb = new ProcessBuilder(cmd)
        .redirectErrorStream(true)
        .redirectOutput(dir.resolve(role.lower() + ".log").toFile());
    pb.environment().put("FTCTL_LOG_LEVEL", "INFO");
    Process p = pb.start();
    controllers.put(role, p);
    return p;
  }

  /**
   * Runs a second {@code ftctl run} for {@code role} in its host's namespace and waits for it
   * (it is expected to refuse to start); returns its exit code and output.
   */
  public Map.Entry<Integer, String> runAgain(Role role) throws IOException, InterruptedException {
    String ns = role == Role.PRIMARY ? net.nsA : net.nsB;
    Process p = new ProcessBuilder("ip", "netns", "exec", ns,
        Path.of(System.getProperty("qemuft.root"), "scripts", "ftctl").toString(),
        "run", "--config", configs.get(role).toString(), "--role", role.lower())
        .redirectErrorStream(true).start();
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.descendants().forEach(ProcessHandle::destroyForcibly);
      p.destroyForcibly();
      throw new IOException("a second controller for " + role.lower() + " did not give up within 120 s");
    }
    return Map.entry(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
  }

  public Process process(Role role) {
    return controllers.get(role);
  }

  /** The controller's own log (stdout and stderr). */
  public String log(Role role) {
    try {
      return Files.readString(dir.resolve(role.lower() + ".log"), StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  /** Asks the controller for its status; waits up to {@code timeout} for it to answer. */
  public JsonNode status(Role role, Duration timeout) throws IOException, InterruptedException {
    Path sock = runDir(role).resolve("control.sock");
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      Process p = controllers.get(role);
      if (p != null && !p.isAlive()) {
        throw new IOException(role.lower() + " controller exited with " + p.exitValue() + ":\n" + tail(log(role)));
      }
      try {
        return ControlServer.ask(sock, "status");
      } catch (IOException e) {
        if (System.nanoTime() > deadline) {
          throw new IOException("no status from the " + role.lower() + " controller at " + sock + " after "
              + timeout.toMillis() + " ms: " + e.getMessage() + "\n" + tail(log(role)), e);
        }
        Thread.sleep(200);
      }
    }
  }

  /** Waits until the controller exits; returns its exit code, or empty on timeout. */
  public Optional<Integer> awaitExit(Role role, Duration timeout) throws InterruptedException {
    Process p = controllers.get(role);
    return p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) ? Optional.of(p.exitValue()) : Optional.empty();
  }

  /** What the controller wrote when it ended (run directory's final-status.json). */
  public JsonNode finalStatus(Role role) throws IOException {
    return JSON.readTree(runDir(role).resolve("final-status.json").toFile());
  }

  /** The pid of the controller's QEMU, from its status. */
  public long qemuPid(Role role) throws IOException, InterruptedException {
    return status(role, Duration.ofSeconds(30)).path("qemu").path("pid").asLong();
  }

  /** Sends a signal (STOP, CONT, KILL, ...) to a process. */
  public static void signal(long pid, String sig) throws IOException {
    TestNet.run("kill", "-" + sig, Long.toString(pid));
  }

  @Override
  public void close() {
    for (Process p : controllers.values()) {
      // A frozen controller would ignore SIGTERM: thaw it first.
      try {
        signal(p.pid(), "CONT");
      } catch (IOException e) {
        // already gone
      }
      p.destroy();
    }
    for (var c : controllers.entrySet()) {
      Process p = c.getValue();
      try {
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
          // It will be killed, and leave its QEMU's ring behind: say where it was stuck.
          System.err.println("FtPair: the " + c.getKey().lower() + " controller (pid " + p.pid()
              + ") did not stop within 20 s of SIGTERM; killing it. Its threads:\n" + threadDump(p.pid())
              + "\nIts log ends:\n" + tail(log(c.getKey())));
          p.descendants().forEach(ProcessHandle::destroyForcibly);
          p.destroyForcibly();
          p.waitFor(10, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        p.destroyForcibly();
      }
    }
  }

  /** {@code jcmd PID Thread.print}, or why there is none. */
  private static String threadDump(long pid) {
    try {
      Process j = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(), Long.toString(pid), "Thread.print").redirectErrorStream(true).start();
      byte[] out = j.getInputStream().readAllBytes();
      j.waitFor(10, TimeUnit.SECONDS);
      return new String(out, StandardCharsets.UTF_8);
    } catch (IOException | InterruptedException e) {
      return "(no thread dump: " + e + ")";
    }
  }

  /** The last lines of a log, for failure messages. */
  public static String tail(String text) {
    String[] lines = text.strip().split("\n");
    return "  " + String.join("\n  ", List.of(lines).subList(Math.max(0, lines.length - 30), lines.length));
  }
}
