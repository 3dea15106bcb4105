package org.qemuft.it.pair;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.channel.ChannelListener;
import org.qemuft.controller.channel.ChannelSettings;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.PeerInfo;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.CorruptingProxy;
import org.qemuft.it.support.FtPair;
import org.qemuft.it.support.PairNetwork;
import org.qemuft.it.support.ServiceClient;
import org.qemuft.nativeio.Netns;
import org.qemuft.nativeio.Sched;

/**
 * A protected pair end to end: two controllers ({@code ftctl run}) in their own network
 * namespaces, the logging channel over a veth pair, the guest's service reached by a client in a
 * third namespace through the primary's output gate and TAP.
 */
class PairIT {
  private static final Duration BOOT = Duration.ofSeconds(240);
  private static final Duration ANSWER = Duration.ofSeconds(60);
  /** The backup replays behind the primary; reaching the power-off can take it a while. */
  private static final Duration END = Duration.ofSeconds(600);

  @TempDir Path tmp;

  @Test
  void everyRequestIsAnsweredThroughTheGateAndTheBackupEndsAtThePrimarysIcount() throws Exception {
    try (PairNetwork net = new PairNetwork(); FtPair pair = new FtPair(net, tmp, PairNetwork.GUEST_KERNEL_ARGS, "")) {
      pair.startBoth();
      // Each controller put its QEMU's QMP I/O thread under SCHED_IDLE (docs/rr-pace.md).
      for (Role role : Role.values()) {
        assertThat(threadPolicies(pair.qemuPid(role), QemuProcess.MONITOR_IO_THREAD)).as(role + "'s QEMU")
            .containsExactly(5); // SCHED_IDLE
      }
      long total = 0;
      try (ServiceClient client = ServiceClient.connect(net.nsC, PairNetwork.GUEST_IP, BOOT)) {
        for (int op = 1; op <= 300; op++) {
          total += op;
          assertThat(client.request("ADD c1 " + op + " " + op, ANSWER)).isEqualTo("OK " + op + " " + total);
        }
        // A repeated operation is answered again, not applied twice.
        assertThat(client.request("ADD c1 7 7", ANSWER)).isEqualTo("OK 7 28");

        // A second controller for the same pair and role refuses to start and disturbs nothing.
        var second = pair.runAgain(Role.BACKUP);
        assertThat(second.getKey()).as(second.getValue()).isEqualTo(2);
        assertThat(second.getValue()).contains("another controller of pair " + pair.pairId() + " (backup) is running");

        // A peer without the secret is refused; the pair does not notice.
        List<String> rogue = new CopyOnWriteArrayList<>();
        ChannelSettings wrong = new ChannelSettings(pair.pairId(), 1,
            "not-the-secret-of-this-pair".getBytes(StandardCharsets.US_ASCII), true,
            Duration.ofMillis(50), Duration.ofMillis(500));
        try (LogChannel intruder = Netns.call(net.nsA, () -> LogChannel.dial(
            new InetSocketAddress(PairNetwork.BACKUP_CHANNEL_IP, FtPair.CHANNEL_PORT), wrong,
            new ChannelListener() {
              @Override
              public void onConnected(PeerInfo peer) {
                rogue.add("connected");
              }

              @Override
              public void onLog(long offset, byte[] events, int len) {
                rogue.add("log");
              }
            }))) {
          awaitAuthFailure(pair);
          assertThat(rogue).isEmpty();
          assertThat(intruder.connected()).isFalse();
        }
        total += 1000;
        assertThat(client.request("ADD c2 1 1000", ANSWER)).isEqualTo("OK 301 " + total);

        JsonNode primary = pair.status(Role.PRIMARY, Duration.ofSeconds(30));
        assertThat(primary.path("role").asText()).isEqualTo("primary");
        assertThat(primary.path("peer").path("connected").asBoolean()).isTrue();
        assertThat(primary.path("gate").path("released").asLong()).isGreaterThanOrEqualTo(301);
        assertThat(primary.path("log").path("acknowledged").asLong()).isPositive();
        assertThat(primary.path("wire").path("logBytesWire").asLong())
            .isLessThan(primary.path("wire").path("logBytesRaw").asLong());
        JsonNode backup = pair.status(Role.BACKUP, Duration.ofSeconds(30));
        assertThat(backup.path("log").path("replayed").asLong()).isPositive();

        assertThat(client.request("SHUTDOWN", ANSWER)).isEqualTo("BYE");
      }
      assertBothEndAtTheSameIcount(pair);
    }
  }

  @Test
  void aFrozenBackupHoldsEveryAnswerAndACorruptChannelIsReset() throws Exception {
    try (PairNetwork net = new PairNetwork();
        CorruptingProxy proxy = new CorruptingProxy(net.nsA, PairNetwork.PRIMARY_CHANNEL_IP, 7701,
            new InetSocketAddress(PairNetwork.BACKUP_CHANNEL_IP, FtPair.CHANNEL_PORT));
        FtPair pair = new FtPair(net, tmp, PairNetwork.GUEST_KERNEL_ARGS, "", PairNetwork.PRIMARY_CHANNEL_IP + ":7701")) {
      pair.startBoth();
      try (ServiceClient client = ServiceClient.connect(net.nsC, PairNetwork.GUEST_IP, BOOT)) {
        assertThat(client.request("ADD c1 1 5", ANSWER)).isEqualTo("OK 1 5");

        // Freeze the backup host: its controller and its QEMU.
        long backupQemu = pair.qemuPid(Role.BACKUP);
        long backupController = pair.process(Role.BACKUP).pid();
        FtPair.signal(backupController, "STOP");
        FtPair.signal(backupQemu, "STOP");
        client.send("ADD c1 2 5");
        Optional<String> during = client.readLine(Duration.ofSeconds(5));
        assertThat(during).as("an answer while the backup was frozen").isEmpty();
        JsonNode held = pair.status(Role.PRIMARY, Duration.ofSeconds(30));
        assertThat(held.path("gate").path("heldFrames").asLong()).isPositive();
        FtPair.signal(backupQemu, "CONT");
        FtPair.signal(backupController, "CONT");
        assertThat(client.readLine(ANSWER)).contains("OK 2 10");

        // Damage the primary-to-backup stream once: the frame is refused, the link is re-made.
        int before = proxy.connections();
        proxy.corruptNextForward();
        for (int op = 3; op <= 60; op++) {
          assertThat(client.request("ADD c1 " + op + " 5", ANSWER)).isEqualTo("OK " + op + " " + (5 * op));
        }
        assertThat(proxy.corrupted()).isEqualTo(1);
        awaitReconnect(proxy, before);
        assertThat(client.request("ADD c1 61 5", ANSWER)).isEqualTo("OK 61 305");
        assertThat(client.request("SHUTDOWN", ANSWER)).isEqualTo("BYE");
      }
      assertBothEndAtTheSameIcount(pair);
    }
  }

  private static void awaitAuthFailure(FtPair pair) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (pair.status(Role.BACKUP, Duration.ofSeconds(30)).path("peer").path("authFailures").asLong() < 1) {
      assertThat(System.nanoTime()).as("the backup reports the refused peer").isLessThan(deadline);
      Thread.sleep(100);
    }
  }

  private static void awaitReconnect(CorruptingProxy proxy, int before) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (proxy.connections() <= before) {
      assertThat(System.nanoTime()).as("the primary re-dials after the corrupt frame").isLessThan(deadline);
      Thread.sleep(100);
    }
  }

  /** The scheduling policy of each thread of {@code pid} named {@code name}. */
  private static List<Integer> threadPolicies(long pid, String name) throws IOException {
    List<Integer> policies = new ArrayList<>();
    try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc", Long.toString(pid), "task"))) {
      for (Path task : tasks) {
        if (Files.readString(task.resolve("comm")).strip().equals(name)) {
          policies.add(Sched.policy(Long.parseLong(task.getFileName().toString())));
        }
      }
    }
    return policies;
  }

  private static void assertBothEndAtTheSameIcount(FtPair pair) throws Exception {
    assertThat(pair.awaitExit(Role.PRIMARY, END)).as(FtPair.tail(pair.log(Role.PRIMARY))).contains(0);
    assertThat(pair.awaitExit(Role.BACKUP, END)).as(FtPair.tail(pair.log(Role.BACKUP))).contains(0);
    long recorded = pair.finalStatus(Role.PRIMARY).path("icount").path("atPowerOff").asLong();
    long replayed = pair.finalStatus(Role.BACKUP).path("icount").path("atPowerOff").asLong();
    assertThat(recorded).isPositive();
    assertThat(replayed).isEqualTo(recorded);
  }
}
