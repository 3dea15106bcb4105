package org.qemuft.it.qmp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.FtctlRun;
import org.qemuft.it.support.FtctlRun.Result;
import org.qemuft.it.support.Guest;

/** {@code scripts/ftctl qmp} against real QEMU running the real guest. */
class FtctlQmpIT {
  private static final Duration BOOT = Duration.ofSeconds(120);
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  @Test
  void talksToARealQemuAndMapsItsAnswersToExitCodes() throws Exception {
    Path sock;
    try (QemuProcess qemu = QemuLaunch.of(Guest.spec(""), tmp.resolve("run"), "qft-ftctl-qmp").start()) {
      qemu.awaitQmp(BOOT);
      qemu.awaitSerial("QEMUFT-READY", BOOT);
      sock = qemu.qmpSocket();
      String s = sock.toString();

      Result status = FtctlRun.run("qmp", "--socket", s, "query-status");
      assertThat(status.exit()).as(status.toString()).isZero();
      JsonNode j = JSON.readTree(status.out());
      assertThat(j.isObject()).isTrue();
      assertThat(j.get("status").asText()).isEqualTo("running");

      Result unknown = FtctlRun.run("qmp", "--socket", s, "no-such-command");
      assertThat(unknown.exit()).as(unknown.toString()).isEqualTo(1);
      assertThat(unknown.err()).contains("CommandNotFound", "no-such-command", s);
      assertThat(unknown.out()).isEmpty();

      Result stop = FtctlRun.run("qmp", "--socket", s, "stop");
      assertThat(stop.exit()).as(stop.toString()).isZero();
      assertThat(JSON.readTree(stop.out()).isEmpty()).isTrue();
      Result info = FtctlRun.run("qmp", "--socket", s, "--raw", "human-monitor-command",
          "{\"command-line\": \"info status\"}");
      assertThat(info.exit()).as(info.toString()).isZero();
      assertThat(info.out()).contains("VM status: paused");

      Result badArgs = FtctlRun.run("qmp", "--socket", s, "replay-break", "[1]");
      assertThat(badArgs.exit()).as(badArgs.toString()).isEqualTo(64);

      Result quit = FtctlRun.run("qmp", "--socket", s, "quit");
      assertThat(quit.exit()).as(quit.toString()).isZero();
      assertThat(qemu.awaitExit(BOOT)).contains(0);
    }
    Result gone = FtctlRun.run("qmp", "--socket", sock.toString(), "--timeout", "5", "query-status");
    assertThat(gone.exit()).as(gone.toString()).isEqualTo(2);
    assertThat(gone.err()).contains("cannot connect to the QMP socket " + sock);
  }
}
