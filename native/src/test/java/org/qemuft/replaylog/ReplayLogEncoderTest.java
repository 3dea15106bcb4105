package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ReplayLogEncoderTest {

  @Test
  void theGoLiveTailIsAShutdownThenInstructionEvents() {
    byte[] tail = ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 3);
    assertThat(ReplayLogScannerTest.hexOf(tail))
        .isEqualTo("0c" + "00000186a0".repeat(3));
  }

  @Test
  void theGoLiveTailAppendedToARealStreamAtItsLastBoundaryScans() {
    // A real pipe-recorded stream, cut at the whole event before its SHUTDOWN/END, plus the tail:
    // what the backup's QEMU would be fed at go-live.
    byte[] log = LogGen.resource("seabios-pipe-stream.bin.gz");
    Scans.Outcome full = Scans.whole(log, Scans.STREAM);
    Ev beforeShutdown = full.events().get(full.events().size() - 3);
    byte[] head = Arrays.copyOf(log, (int) beforeShutdown.end());
    ByteArrayOutputStream fed = new ByteArrayOutputStream();
    fed.writeBytes(head);
    fed.writeBytes(ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 100_000, 64));

    Scans.Outcome o = Scans.whole(fed.toByteArray(), Scans.STREAM);
    assertThat(o.error()).isNull();
    assertThat(o.atBoundary()).isTrue();
    int n = o.events().size();
    assertThat(o.events().get(n - 65).kind()).isEqualTo(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT.code());
    assertThat(o.events().get(n - 65).start()).isEqualTo(beforeShutdown.end());
    assertThat(o.icount()).isEqualTo(beforeShutdown.icount() + 64L * 100_000);
  }

  @Test
  void theDefaultGoLiveTailIsHostQmpQuitThenAHundredEventsOfAHundredThousand() {
    assertThat(ReplayLogScannerTest.hexOf(ReplayLogEncoder.goLiveTail()))
        .isEqualTo("0c" + "00000186a0".repeat(100));
  }

  @Test
  void theFileHeaderIsTheVersionAndEightZeroBytes() {
    assertThat(ReplayLogScannerTest.hexOf(ReplayLogEncoder.fileHeader()))
        .isEqualTo("00e0200c0000000000000000");
    assertThat(Scans.whole(ReplayLogEncoder.fileHeader(), Scans.FILE).safeEnd()).isEqualTo(12);
  }

  @Test
  void impossibleTailsAreRefused() {
    assertThatThrownBy(() -> ReplayLogEncoder.goLiveTail(ReplayEventKind.END, 1, 1))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("SHUTDOWN");
    assertThatThrownBy(() -> ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 0, 1))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("got 0");
    assertThatThrownBy(() -> ReplayLogEncoder.goLiveTail(ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT, 1, 0))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> ReplayLogEncoder.instruction(-5))
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(ReplayLogScannerTest.hexOf(ReplayLogEncoder.instruction(Integer.MAX_VALUE)))
        .isEqualTo("007fffffff");
  }
}
