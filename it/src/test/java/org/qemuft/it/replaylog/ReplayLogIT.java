package org.qemuft.it.replaylog;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.FtctlRun;
import org.qemuft.it.support.FtctlRun.Result;
import org.qemuft.it.support.Guest;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogScanner;

/** The replay-log scanner and {@code ftctl rr-scan} on logs of the real guest, recorded here. */
class ReplayLogIT {
  private static final Duration BOOT = Duration.ofSeconds(180);
  private static final String DONE = "QEMUFT-WORK-DONE mib=(\\d+) checksum=([0-9a-f]{16})";

  @TempDir Path tmp;

  @Test
  void ftctlRrScanSummarisesTheGuestsRecording() throws Exception {
    Path log = tmp.resolve("replay.bin");
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(16), tmp.resolve("rec"), "qft-rrscan")
        .mode(Mode.RECORD, log).start()) {
      rec.awaitSerial(DONE, BOOT);
      assertThat(rec.awaitExit(BOOT)).contains(0);
    }

    Result cli = FtctlRun.run("rr-scan", log.toString());
    assertThat(cli.exit()).as(cli.err()).isZero();
    JsonNode j = new ObjectMapper().readTree(cli.out());
    assertThat(j.get("version").asText()).isEqualTo("0x00e0200c");
    assertThat(j.get("complete").asBoolean()).isTrue();
    assertThat(j.get("ended").asBoolean()).isTrue();
    assertThat(j.get("bytes").asLong()).isEqualTo(Files.size(log));
    JsonNode byKind = j.get("byKind");
    // The guest powered itself off; QEMU's exit then adds host-signal and END.
    assertThat(byKind.get("SHUTDOWN_GUEST_SHUTDOWN").asLong()).isEqualTo(1);
    assertThat(byKind.get("SHUTDOWN_HOST_SIGNAL").asLong()).isEqualTo(1);
    assertThat(byKind.get("END").asLong()).isEqualTo(1);
    assertThat(byKind.get("INSTRUCTION").asLong()).isPositive();

    // The library, fed the same file in 4 KiB pieces, agrees with the command.
    long[] counts = new long[ReplayEventKind.CODE_COUNT];
    long[] lastLongEvent = {-1}; // start of the last event of two bytes or more
    ReplayLogScanner s = ReplayLogScanner.forLogFile((k, a, b, i) -> {
      counts[k]++;
      if (b - a >= 2) {
        lastLongEvent[0] = a;
      }
    }, false);
    byte[] data = Files.readAllBytes(log);
    for (int p = 0; p < data.length; p += 4096) {
      s.feed(data, p, Math.min(4096, data.length - p));
    }
    assertThat(s.events()).isEqualTo(j.get("events").asLong());
    assertThat(s.icount()).isEqualTo(j.get("icount").asLong());
    for (int k = 0; k < counts.length; k++) {
      if (counts[k] > 0) {
        assertThat(byKind.get(ReplayEventKind.of(k).name()).asLong()).isEqualTo(counts[k]);
      }
    }

    // A copy cut inside an event (the last one of two bytes or more: the log ends with one-byte
    // events, and a cut between two of them leaves a whole, unended log): valid, incomplete, and
    // the events before the cut remain.
    assertThat(lastLongEvent[0]).isPositive();
    Path cut = tmp.resolve("cut.bin");
    Files.write(cut, java.util.Arrays.copyOf(data, (int) lastLongEvent[0] + 1));
    Result partial = FtctlRun.run("rr-scan", cut.toString());
    assertThat(partial.exit()).as(partial.err()).isZero();
    JsonNode pj = new ObjectMapper().readTree(partial.out());
    assertThat(pj.get("complete").asBoolean()).isFalse();
    assertThat(pj.get("ended").asBoolean()).isFalse();
    assertThat(pj.get("lastEventEnd").asLong()).isEqualTo(lastLongEvent[0]);
  }

  /**
   * The scanner's icount is the sum of INSTRUCTION events; QMP query-replay reports the vCPU's
   * raw count. While the VM runs the raw count may be ahead of the log; once it is stopped and
   * QEMU has exited (logging what was pending), they must be equal.
   */
  @Test
  void theLogsIcountEqualsQueryReplayOnceTheVmIsStopped() throws Exception {
    Path log = tmp.resolve("service.bin");
    long running;
    long stopped;
    try (QemuProcess rec = QemuLaunch.of(Guest.spec(""), tmp.resolve("svc"), "qft-rricount")
        .mode(Mode.RECORD, log).start()) {
      rec.awaitQmp(BOOT);
      rec.awaitSerial("QEMUFT-READY", BOOT);
      try (QemuMonitor qmp = QemuMonitor.connect(rec.qmpSocket(), BOOT)) {
        running = qmp.queryReplay().icount();
        qmp.stop();
        stopped = qmp.queryReplay().icount();
        Thread.sleep(300);
        assertThat(qmp.queryReplay().icount()).isEqualTo(stopped);
        qmp.quit();
      }
      assertThat(rec.awaitExit(BOOT)).contains(0);
    }
    assertThat(stopped).isGreaterThanOrEqualTo(running).isPositive();

    Result cli = FtctlRun.run("rr-scan", log.toString());
    assertThat(cli.exit()).as(cli.err()).isZero();
    JsonNode j = new ObjectMapper().readTree(cli.out());
    assertThat(j.get("icount").asLong()).isEqualTo(stopped);
    assertThat(j.get("byKind").get("SHUTDOWN_HOST_QMP_QUIT").asLong()).isEqualTo(1);
  }

  /**
   * QEMU recording into a pipe, scanned as the bytes arrive in whatever pieces the pipe delivers:
   * the stream has no header and ends with END and QEMU's 4-byte version trailer, and the live
   * scan finds exactly the events a scan of the whole captured stream finds.
   */
  @Test
  void aLiveRecordingIntoAPipeIsScannedIncrementally() throws Exception {
    Path fifo = tmp.resolve("replay.fifo");
    Process mk = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
    assertThat(mk.waitFor()).isZero();
    List<long[]> live = new ArrayList<>();
    ReplayLogScanner scanner = ReplayLogScanner.forStream(
        (k, a, b, i) -> live.add(new long[] {k, a, b, i}), 0, 0);
    // Daemon: if QEMU never opens the FIFO, the reader stays blocked in open(), which no
    // interrupt ends; it must not keep the test JVM alive.
    ExecutorService reader =
        Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("qft-fifo-reader").factory());
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(16), tmp.resolve("pipe"), "qft-rrpipe")
        .mode(Mode.RECORD, fifo).start()) {
      Future<byte[]> copy = reader.submit(() -> {
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
        try (InputStream in = Files.newInputStream(fifo)) {
          byte[] buf = new byte[65536];
          int n;
          while ((n = in.read(buf)) > 0) {
            scanner.feed(buf, 0, n); // whatever the pipe delivers: any split
            all.write(buf, 0, n);
          }
        }
        return all.toByteArray();
      });
      rec.awaitSerial(DONE, BOOT);
      assertThat(rec.awaitExit(BOOT)).contains(0);
      byte[] stream = copy.get(BOOT.toSeconds(), TimeUnit.SECONDS);

      assertThat(scanner.endSeen()).isTrue();
      assertThat(scanner.atEventBoundary()).isTrue();
      assertThat(scanner.safeEnd()).isEqualTo(stream.length - 4);
      assertThat(ByteBuffer.wrap(stream, stream.length - 4, 4).getInt())
          .isEqualTo(ReplayLogScanner.REPLAY_VERSION);

      List<long[]> whole = new ArrayList<>();
      ReplayLogScanner.forStream((k, a, b, i) -> whole.add(new long[] {k, a, b, i}), 0, 0)
          .feed(stream, 0, stream.length);
      assertThat(live).hasSameSizeAs(whole);
      for (int e = 0; e < whole.size(); e++) {
        assertThat(live.get(e)).containsExactly(whole.get(e));
      }
    } finally {
      reader.shutdownNow();
    }
  }
}
