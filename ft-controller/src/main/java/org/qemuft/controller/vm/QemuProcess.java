package org.qemuft.controller.vm;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.qemuft.nativeio.Sched;

/**
 * One running QEMU that this JVM started and owns. {@link #close()} ends it (SIGTERM, then
 * SIGKILL after a grace period) and returns only when it is gone; a JVM shutdown hook kills any
 * QEMU still running when the JVM exits, so an aborted test or controller does not leave one
 * behind.
 *
 * <p>Thread-safe.
 */
public final class QemuProcess implements AutoCloseable {
  private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();
  private static final Duration POLL = Duration.ofMillis(20);
  /** How long {@link #stop} waits for the kernel to reap QEMU after SIGKILL. */
  private static final Duration KILL_WAIT = Duration.ofSeconds(10);
  /** QEMU 7.2's name for its QMP monitor's I/O thread (monitor/monitor.c, with debug-threads=on). */
  public static final String MONITOR_IO_THREAD = "IO mon_iothread";

  static {
    Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly),
        "qemu-reaper"));
  }

  private final String name;
  private final Process process;
  private final List<String> command;
  private final Path qmpSocket;
  private final Path serialLog;
  private final Path qemuLog;
  /** Threads {@link #idleMonitorIoThread} put under SCHED_IDLE. */
  private final Set<Long> idled = ConcurrentHashMap.newKeySet();

  QemuProcess(String name, Process process, List<String> command, Path qmpSocket, Path serialLog,
      Path qemuLog) {
    this.name = name;
    this.process = process;
    this.command = List.copyOf(command);
    this.qmpSocket = qmpSocket;
    this.serialLog = serialLog;
    this.qemuLog = qemuLog;
    LIVE.add(process);
    process.onExit().thenRun(() -> LIVE.remove(process));
  }

  public String name() {
    return name;
  }

  public long pid() {
    return process.pid();
  }

  public List<String> command() {
    return command;
  }

  public Path qmpSocket() {
    return qmpSocket;
  }

  public Path serialLog() {
    return serialLog;
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  /** The exit status, once QEMU has ended. */
  public Optional<Integer> exitCode() {
    return process.isAlive() ? Optional.empty() : Optional.of(process.exitValue());
  }

  /** Waits up to {@code timeout} for QEMU to end by itself; returns its exit status if it did. */
  public Optional<Integer> awaitExit(Duration timeout) throws InterruptedException {
    if (process.waitFor(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
      return Optional.of(process.exitValue());
    }
    return Optional.empty();
  }

  /**
   * Waits until QMP's socket exists and tightens it to mode 0600.
   *
   * @throws QemuException if QEMU exits first or the socket does not appear in time
   */
  public void awaitQmp(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!Files.exists(qmpSocket)) {
      checkRunning("waiting for its QMP socket " + qmpSocket);
      if (System.nanoTime() > deadline) {
        throw new QemuException(describe() + ": no QMP socket at " + qmpSocket + " after "
            + timeout.toMillis() + " ms" + logTail());
      }
      Thread.sleep(POLL);
    }
    try {
      Files.setPosixFilePermissions(qmpSocket, PosixFilePermissions.fromString("rw-------"));
    } catch (IOException e) {
      throw new QemuException(describe() + ": cannot restrict " + qmpSocket + " to mode 0600: " + e);
    }
  }

  /**
   * Puts QEMU's QMP monitor I/O thread under SCHED_IDLE ({@link Sched#idle}); returns how many
   * threads it changed (one, or none when QEMU has no such thread). QEMU 7.2 serves a QMP socket
   * from a dedicated I/O thread ("IO mon_iothread", named because {@link QemuLaunch} passes
   * {@code debug-threads=on}) that the icount clock wakes at every vCPU pass, and that busy-polls
   * after each wake-up: on a busy core it takes CPU time from the vCPU, which a replaying backup
   * cannot spare (docs/rr-pace.md, "The QMP monitor's I/O thread"). Under SCHED_IDLE it runs when
   * the core has nothing else to do, or for a minimal share; it only moves QMP's bytes (commands
   * run in QEMU's main loop), so QMP answers as before on an idle core and a little later on a
   * saturated one. Call it once QMP has greeted: the thread exists from then on. {@link #stop}
   * puts it back first: QEMU joins the thread on its way out, which on a saturated core it
   * could otherwise wait for.
   *
   * @throws IOException if a thread could not be changed (naming it and why)
   */
  public int idleMonitorIoThread() throws IOException {
    int changed = 0;
    try (var tasks = Files.list(Path.of("/proc", Long.toString(pid()), "task"))) {
      for (Path task : (Iterable<Path>) tasks::iterator) {
        String comm;
        try {
          comm = Files.readString(task.resolve("comm"), StandardCharsets.UTF_8).strip();
        } catch (IOException gone) { // a thread that ended meanwhile
          continue;
        }
        if (comm.equals(MONITOR_IO_THREAD)) {
          long tid = Long.parseLong(task.getFileName().toString());
          Sched.idle(tid);
          idled.add(tid);
          changed++;
        }
      }
    }
    return changed;
  }

  /**
   * Waits until a line of the guest's serial console matches {@code regex} and returns the match.
   * Lines already written count, so call order does not matter.
   *
   * @throws QemuException if QEMU exits first (with the end of its log) or on timeout
   */
  public Matcher awaitSerial(String regex, Duration timeout) throws InterruptedException {
    Pattern pattern = Pattern.compile(regex);
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      Matcher m = pattern.matcher(serialText());
      if (m.find()) {
        return m;
      }
      if (!process.isAlive()) {
        // The last lines may have arrived just before the exit.
        m = pattern.matcher(serialText());
        if (m.find()) {
          return m;
        }
        checkRunning("waiting for /" + regex + "/ on its serial console");
      }
      if (System.nanoTime() > deadline) {
        throw new QemuException(describe() + ": no /" + regex + "/ on the serial console after "
            + timeout.toMillis() + " ms" + serialTail() + logTail());
      }
      Thread.sleep(POLL);
    }
  }

  /** Everything the guest wrote on its serial console so far. */
  public String serialText() {
    return readText(serialLog);
  }

  /** Everything QEMU wrote on its stdout/stderr so far. */
  public String qemuLogText() {
    return readText(qemuLog);
  }

  /** SIGKILL, as a host failure would; returns when the process is gone. */
  public void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor();
  }

  /** Suspends (SIGSTOP) or resumes (SIGCONT) QEMU, as a frozen host would. */
  public void signal(String signal) throws IOException, InterruptedException {
    Process p = new ProcessBuilder("kill", "-" + signal, Long.toString(pid())).inheritIO().start();
    if (p.waitFor() != 0) {
      throw new IOException("kill -" + signal + " " + pid() + " failed");
    }
  }

  /**
   * Ends QEMU: SIGTERM, and SIGKILL if it is still there after {@code grace}.
   *
   * @throws QemuException if the kernel has not reaped it 10 s after SIGKILL (it hangs in the
   *     kernel; nothing more can be done from here)
   */
  public void stop(Duration grace) throws InterruptedException {
    if (!process.isAlive()) {
      return;
    }
    for (long tid : idled) {
      try {
        Sched.normal(tid);
      } catch (IOException gone) { // the thread ended already
      }
    }
    process.destroy();
    if (!process.waitFor(grace.toNanos(), TimeUnit.NANOSECONDS)) {
      process.destroyForcibly();
      if (!process.waitFor(KILL_WAIT.toNanos(), TimeUnit.NANOSECONDS)) {
        throw new QemuException(describe() + " is still there " + KILL_WAIT.toSeconds() + " s after SIGKILL");
      }
    }
  }

  /** Ends QEMU (see {@link #stop}) with a 5 s grace period. */
  @Override
  public void close() {
    boolean interrupted = Thread.interrupted();
    try {
      while (true) {
        try {
          stop(Duration.ofSeconds(5));
          return;
        } catch (InterruptedException e) {
          interrupted = true;
          process.destroyForcibly();
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }

  @Override
  public String toString() {
    return describe();
  }

  private String describe() {
    return "QEMU '" + name + "' (pid " + process.pid() + ")";
  }

  private void checkRunning(String whatFor) {
    if (!process.isAlive()) {
      throw new QemuException(describe() + " exited with status " + process.exitValue() + " while "
          + whatFor + serialTail() + logTail());
    }
  }

  private String logTail() {
    return tail("its log " + qemuLog, qemuLogText());
  }

  private String serialTail() {
    return tail("its console " + serialLog, serialText());
  }

  private static String tail(String what, String text) {
    if (text.isBlank()) {
      return "; " + what + " is empty";
    }
    String[] lines = text.strip().split("\n");
    int from = Math.max(0, lines.length - 15);
    return "; last lines of " + what + ":\n  " + String.join("\n  ", List.of(lines).subList(from, lines.length));
  }

  private static String readText(Path file) {
    try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
      byte[] b = new byte[(int) Math.min(f.length(), 16 << 20)];
      f.readFully(b);
      return new String(b, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "";
    }
  }
}
