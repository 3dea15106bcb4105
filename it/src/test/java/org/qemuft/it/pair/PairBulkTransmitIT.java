package org.qemuft.it.pair;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.it.support.FtPair;
import org.qemuft.it.support.PairNetwork;
import org.qemuft.it.support.ServiceClient;

/**
 * A protected pair whose guest transmits in bulk: the client asks the guest's service for
 * several 8 MiB payloads (SEND), with requests in between, through the primary's output gate.
 * Before the guest NIC moved to UDP (GuestNic), the backup's replay stopped advancing soon after
 * such a transfer (the primary's QEMU completed transmits at moments its log did not record), flow
 * control then held the primary, and everything stalled. Both controllers must end at the same
 * icount at the guest's power-off.
 */
class PairBulkTransmitIT {
  private static final Duration BOOT = Duration.ofSeconds(240);
  private static final Duration ANSWER = Duration.ofSeconds(120);
  private static final Duration TRANSFER = Duration.ofSeconds(600);
  private static final Duration END = Duration.ofSeconds(600);
  private static final long PAYLOAD = 8L << 20;
  private static final int ROUNDS = Integer.getInteger("qemuft.it.pairBulk.rounds", 4);

  @TempDir Path tmp;

  @Test
  void bulkTransmitsPassTheGateAndTheBackupEndsAtThePrimarysIcount() throws Exception {
    try (PairNetwork net = new PairNetwork(); FtPair pair = new FtPair(net, tmp, PairNetwork.GUEST_KERNEL_ARGS, "")) {
      pair.startBoth();
      long total = 0;
      try (ServiceClient client = ServiceClient.connect(net.nsC, PairNetwork.GUEST_IP, BOOT)) {
        for (int round = 1; round <= ROUNDS; round++) {
          for (int op = 1; op <= 5; op++) {
            int n = (round - 1) * 5 + op;
            total += n;
            assertThat(client.request("ADD c1 " + n + " " + n, ANSWER)).isEqualTo("OK " + n + " " + total);
          }
          client.bulk(PAYLOAD, TRANSFER);
        }
        assertThat(client.request("GET", ANSWER)).startsWith("TOTAL " + total + " SEQ " + (ROUNDS * 5) + " ");

        JsonNode primary = pair.status(Role.PRIMARY, Duration.ofSeconds(30));
        long payloadFrames = ROUNDS * PAYLOAD / 1500;
        assertThat(primary.path("gate").path("released").asLong()).isGreaterThan(payloadFrames);
        assertThat(primary.path("guestNic").path("framesFromGuest").asLong()).isGreaterThan(payloadFrames);
        JsonNode backup = pair.status(Role.BACKUP, Duration.ofSeconds(30));
        assertThat(backup.path("guestNic").path("framesFromGuest").asLong())
            .as("a replaying guest's frames never leave its QEMU").isZero();
        System.out.printf("primary: %s%nbackup: %s%n", primary, backup);

        assertThat(client.request("SHUTDOWN", ANSWER)).isEqualTo("BYE");
      }
      assertThat(pair.awaitExit(Role.PRIMARY, END)).as(FtPair.tail(pair.log(Role.PRIMARY))).contains(0);
      assertThat(pair.awaitExit(Role.BACKUP, END)).as(FtPair.tail(pair.log(Role.BACKUP))).contains(0);
      long recorded = pair.finalStatus(Role.PRIMARY).path("icount").path("atPowerOff").asLong();
      long replayed = pair.finalStatus(Role.BACKUP).path("icount").path("atPowerOff").asLong();
      System.out.printf("icount at the guest's power-off: primary %d, backup %d%n", recorded, replayed);
      assertThat(recorded).isPositive();
      assertThat(replayed).isEqualTo(recorded);
    }
  }
}
