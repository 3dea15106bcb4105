package org.qemuft.it.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuException;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.Guest;

/** The launcher against real QEMU and the real guest. */
class QemuLaunchIT {
  private static final Duration BOOT = Duration.ofSeconds(120);
  private static final String DONE = "QEMUFT-WORK-DONE mib=(\\d+) checksum=([0-9a-f]{16})";

  @TempDir Path tmp;

  @Test
  void workloadRunsToPowerOffWithPrivateQmpSocket() throws Exception {
    QemuLaunch launch = QemuLaunch.of(Guest.workload(64), tmp.resolve("run"), "qft-launch");
    try (QemuProcess qemu = launch.start()) {
      qemu.awaitQmp(BOOT);
      assertThat(Files.getPosixFilePermissions(qemu.qmpSocket()))
          .isEqualTo(PosixFilePermissions.fromString("rw-------"));
      assertThat(Files.getPosixFilePermissions(launch.runDir()))
          .isEqualTo(PosixFilePermissions.fromString("rwx------"));
      Matcher done = qemu.awaitSerial(DONE, BOOT);
      assertThat(done.group(1)).isEqualTo("64");
      assertThat(qemu.awaitExit(BOOT)).contains(0);
    }
  }

  @Test
  void replayOfARecordingComputesTheSameChecksum() throws Exception {
    Path log = tmp.resolve("replay.bin");
    String recorded;
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(64), tmp.resolve("rec"), "qft-rec")
        .mode(Mode.RECORD, log).start()) {
      recorded = rec.awaitSerial(DONE, BOOT).group(2);
      assertThat(rec.awaitExit(BOOT)).contains(0);
    }
    assertThat(Files.size(log)).isGreaterThan(12);
    try (QemuProcess rep = QemuLaunch.of(Guest.workload(64), tmp.resolve("rep"), "qft-rep")
        .mode(Mode.REPLAY, log).start()) {
      assertThat(rep.awaitSerial(DONE, BOOT).group(2)).isEqualTo(recorded);
      assertThat(rep.awaitExit(BOOT)).contains(0);
    }
  }

  @Test
  void aQemuThatExitsEarlyIsReportedWithItsLog() throws Exception {
    QemuLaunch launch = QemuLaunch.of(Guest.workload(64), tmp.resolve("bad"), "qft-bad")
        .extraArgs("-no-such-option");
    try (QemuProcess qemu = launch.start()) {
      assertThatThrownBy(() -> qemu.awaitSerial("QEMUFT-READY", BOOT))
          .isInstanceOf(QemuException.class)
          .hasMessageContaining("exited with status 1")
          .hasMessageContaining("-no-such-option");
    }
  }

  @Test
  void closeKillsARunningGuest() throws Exception {
    QemuProcess qemu = QemuLaunch.of(Guest.spec(""), tmp.resolve("svc"), "qft-close").start();
    try (qemu) {
      qemu.awaitSerial("QEMUFT-SERVICE-UP", BOOT);
    }
    assertThat(qemu.isAlive()).isFalse();
    assertThat(ProcessHandle.of(qemu.pid())).isEmpty();
  }
}
