package org.qemuft.it.support;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Confines processes to CPUs with util-linux's taskset, and checks that they are: the benchmarks'
 * stand-in for two hosts on one (a core for each side). A CPU list is in the kernel's form, as
 * Cpus_allowed_list in /proc/PID/status shows it ("0", "1", "0-1"); null means unconfined, and
 * then every method here does nothing.
 */
public final class CpuAffinity {
  private CpuAffinity() {}

  /**
   * The words that run a command confined to {@code cpus} ({@code taskset -c LIST}, before the
   * command); its threads and children inherit it. Empty for null.
   */
  public static List<String> prefix(String cpus) {
    return cpus == null ? List.of() : List.of("taskset", "-c", cpus);
  }

  /**
   * Confines every thread of the running process {@code pid} to {@code cpus} ({@code taskset -a}).
   * A thread created while it runs (by a thread not yet confined) escapes it: call it again once
   * the process has settled, then {@link #check}.
   */
  public static void confine(long pid, String cpus) throws IOException {
    if (cpus != null) {
      TestNet.run("taskset", "-a", "-c", "-p", cpus, Long.toString(pid));
    }
  }

  /**
   * The threads of process {@code pid} that may run elsewhere than exactly on {@code cpus}, each as
   * "TID (NAME): LIST"; empty for null. Threads that end meanwhile are passed over.
   *
   * @throws AssertionError if the process is not running
   */
  public static List<String> unconfined(long pid, String cpus, String what) throws IOException {
    List<String> wrong = new ArrayList<>();
    if (cpus == null) {
      return wrong;
    }
    try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc", Long.toString(pid), "task"))) {
      for (Path task : tasks) {
        List<String> status;
        try {
          status = Files.readAllLines(task.resolve("status"));
        } catch (IOException e) {
          if (Files.exists(task)) {
            throw e;
          }
          continue; // the thread ended
        }
        String allowed = field(status, "Cpus_allowed_list:");
        if (!cpus.equals(allowed)) {
          wrong.add(task.getFileName() + " (" + field(status, "Name:") + "): " + allowed);
        }
      }
    } catch (NoSuchFileException e) {
      throw new AssertionError(what + " (pid " + pid + ") is not running: cannot check that it is confined to CPU "
          + cpus, e);
    }
    return wrong;
  }

  /**
   * Fails unless every thread of process {@code pid} may run on exactly {@code cpus}.
   *
   * @param what the process, for the message (e.g. "the primary's QEMU")
   * @throws AssertionError naming the threads that may run elsewhere, or if the process is not running
   */
  public static void check(long pid, String cpus, String what) throws IOException {
    List<String> wrong = unconfined(pid, cpus, what);
    if (!wrong.isEmpty()) {
      throw new AssertionError(what + " (pid " + pid + ") is not confined to CPU " + cpus + ": its threads "
          + String.join(", ", wrong));
    }
  }

  private static String field(List<String> status, String name) {
    return status.stream().filter(l -> l.startsWith(name)).map(l -> l.substring(name.length()).strip())
        .findFirst().orElse("(no " + name + ")");
  }
}
