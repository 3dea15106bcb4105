package org.qemuft.it.pair;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.it.support.FtPair;
import org.qemuft.it.support.PairNetwork;
import org.qemuft.it.support.ServiceClient;

/**
 * An operator stops a running pair with SIGTERM (systemctl stop, Ctrl-C): each controller stops
 * its QEMU, removes its shared-memory ring and its control socket, writes its final status and
 * exits; nothing is left behind. Several rounds, because what once went wrong was a race: the
 * shutdown hook and the main thread closing at the same time, and the JVM exiting while one of
 * them was still removing the ring (seen as leftover rings after benchmark runs).
 */
class PairStopIT {
  private static final Duration BOOT = Duration.ofSeconds(240);
  private static final Duration ANSWER = Duration.ofSeconds(60);
  private static final int ROUNDS = 3;

  @TempDir Path tmp;

  @Test
  void sigtermStopsBothControllersAndTheirQemusAndLeavesNothingBehind() throws Exception {
    for (int round = 1; round <= ROUNDS; round++) {
      try (PairNetwork net = new PairNetwork();
          FtPair pair = new FtPair(net, tmp.resolve("round" + round), PairNetwork.GUEST_KERNEL_ARGS, "")) {
        pair.startBoth();
        try (ServiceClient c = ServiceClient.connect(net.nsC, PairNetwork.GUEST_IP, BOOT)) {
          assertThat(c.request("PING", ANSWER)).isEqualTo("PONG");
        }
        Map<Role, Long> qemu = new EnumMap<>(Role.class);
        Map<Role, Path> ring = new EnumMap<>(Role.class);
        for (Role role : Role.values()) {
          qemu.put(role, pair.qemuPid(role));
          ring.put(role, Path.of("/dev/shm", "qemuft-" + pair.pairId() + "-1-" + role.lower()));
          assertThat(ring.get(role)).as("the " + role.lower() + "'s ring while it runs").exists();
        }

        for (Role role : Role.values()) {
          pair.process(role).destroy(); // SIGTERM to the controller (ip netns exec and ftctl exec it)
        }
        for (Role role : Role.values()) {
          Process p = pair.process(role);
          assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("the " + role.lower() + " controller exits on SIGTERM\n"
              + FtPair.tail(pair.log(role))).isTrue();
          String why = "round " + round + ", " + role.lower() + ":\n" + FtPair.tail(pair.log(role));
          assertThat(ring.get(role)).as("ring left behind, " + why).doesNotExist();
          assertThat(pair.runDir(role).resolve("control.sock")).as("control socket left behind, " + why).doesNotExist();
          assertThat(pair.runDir(role).resolve("final-status.json")).as("final status, " + why).exists();
          assertThat(awaitGone(qemu.get(role), Duration.ofSeconds(10))).as("QEMU left running, " + why).isTrue();
        }
      }
    }
  }

  /** Whether the process has exited (gone, or a zombie waiting for init) within {@code timeout}. */
  private static boolean awaitGone(long pid, Duration timeout) throws InterruptedException, IOException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      String stat;
      try {
        stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
      } catch (NoSuchFileException e) {
        return true;
      }
      // state is the field after the parenthesised command name
      char state = stat.substring(stat.lastIndexOf(')') + 2).charAt(0);
      if (state == 'Z' || state == 'X') {
        return true;
      }
      if (System.nanoTime() > deadline) {
        return false;
      }
      Thread.sleep(100);
    }
  }
}
