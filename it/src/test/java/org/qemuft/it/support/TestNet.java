package org.qemuft.it.support;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.qemuft.nativeio.Tap;

/**
 * Network namespaces and links for one test, all removed on {@link #close()} (also when the test
 * failed). Names start with {@code qft} so scripts/test can spot leftovers. Needs root.
 */
public final class TestNet implements AutoCloseable {
  private final String tag = Integer.toString(ThreadLocalRandom.current().nextInt(0x1000, 0xffff), 16);
  private final Deque<String[]> undo = new ArrayDeque<>();

  /** A short unique name with this prefix, usable for netns and links (max 15 chars). */
  public String name(String prefix) {
    String n = "qft" + prefix + tag;
    if (n.length() > 15) {
      throw new IllegalArgumentException("name " + n + " is longer than an interface name may be");
    }
    return n;
  }

  /** Creates a network namespace with its loopback up. */
  public String netns(String prefix) throws IOException {
    String ns = name(prefix);
    run("ip", "netns", "add", ns);
    undo.push(new String[] {"ip", "netns", "delete", ns});
    run("ip", "-n", ns, "link", "set", "lo", "up");
    return ns;
  }

  /** Creates a bridge in {@code ns} (null: the host's namespace), up. */
  public String bridge(String ns, String prefix) throws IOException {
    String br = name(prefix);
    run(ip(ns, "link", "add", br, "type", "bridge"));
    if (ns == null) {
      undo.push(new String[] {"ip", "link", "delete", br});
    }
    run(ip(ns, "link", "set", br, "up"));
    return br;
  }

  /** A veth pair: end {@code a} in {@code nsA}, end {@code b} in {@code nsB} (null: host), both up. */
  public void veth(String a, String nsA, String b, String nsB) throws IOException {
    run("ip", "link", "add", a, "type", "veth", "peer", "name", b);
    undo.push(new String[] {"ip", "link", "delete", a});
    if (nsA != null) {
      run("ip", "link", "set", a, "netns", nsA);
    }
    if (nsB != null) {
      run("ip", "link", "set", b, "netns", nsB);
    }
    run(ip(nsA, "link", "set", a, "up"));
    run(ip(nsB, "link", "set", b, "up"));
  }

  /**
   * A TAP device this JVM holds, moved into {@code ns} with address {@code cidr} and up: the far
   * side of a "cable" whose near side is the returned {@link Tap} (close it to remove the device).
   */
  public Tap tapInto(String ns, String cidr) throws IOException {
    String dev = name("t");
    Tap tap = Tap.open(dev);
    try {
      run("ip", "link", "set", dev, "netns", ns);
      ip(ns, List.of("addr", "add", cidr, "dev", dev));
      ip(ns, List.of("link", "set", dev, "up"));
      return tap;
    } catch (IOException | RuntimeException e) {
      tap.close();
      throw e;
    }
  }

  /** Runs {@code ip} in {@code ns} (null: host) and fails with its output if it fails. */
  public String ip(String ns, List<String> args) throws IOException {
    return run(ip(ns, args.toArray(String[]::new)));
  }

  /** Runs a command inside {@code ns}. */
  public String exec(String ns, String... cmd) throws IOException {
    List<String> full = new ArrayList<>(List.of("ip", "netns", "exec", ns));
    full.addAll(List.of(cmd));
    return run(full.toArray(String[]::new));
  }

  /** Registers a command that undoes something the test set up itself. */
  public void onClose(String... cmd) {
    undo.push(cmd);
  }

  @Override
  public void close() {
    while (!undo.isEmpty()) {
      String[] cmd = undo.pop();
      try {
        run(cmd);
      } catch (IOException e) {
        // Already gone with its namespace, or removed by the test; nothing left to undo.
      }
    }
  }

  private static String[] ip(String ns, String... args) {
    List<String> cmd = new ArrayList<>(List.of("ip"));
    if (ns != null) {
      cmd.addAll(List.of("-n", ns));
    }
    cmd.addAll(List.of(args));
    return cmd.toArray(String[]::new);
  }

  /** Runs a command to completion; fails with its output when it exits non-zero. */
  public static String run(String... cmd) throws IOException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    try {
      if (!p.waitFor(60, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IOException(String.join(" ", cmd) + ": did not finish in 60 s");
      }
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException(String.join(" ", cmd) + ": interrupted", e);
    }
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.exitValue() != 0) {
      throw new IOException(String.join(" ", cmd) + " failed (" + p.exitValue() + "): " + out.strip());
    }
    return out;
  }
}
