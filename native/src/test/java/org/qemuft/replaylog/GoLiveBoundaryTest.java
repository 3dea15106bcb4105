package org.qemuft.replaylog;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class GoLiveBoundaryTest {
  private static final int WARP_START = ReplayEventKind.CHECKPOINT_CLOCK_WARP_START.code();
  private static final int WARP_ACCOUNT = ReplayEventKind.CHECKPOINT_CLOCK_WARP_ACCOUNT.code();

  @Test
  void withoutAnOpenWarpTheBoundaryIsTheLastWholeEvent() {
    LogGen.Log log = new LogGen.Log(1000, 50)
        .event(ReplayLogEncoder.instruction(700))
        .event(new byte[] {(byte) WARP_ACCOUNT})
        .event(ReplayLogEncoder.instruction(300))
        .event(new byte[] {(byte) ReplayEventKind.INTERRUPT.code()});
    GoLiveBoundary b = feed(log, 1000, 50);
    assertThat(b.holdsBackOpenWarp()).isFalse();
    assertThat(b.end()).isEqualTo(log.position());
    assertThat(b.icount()).isEqualTo(50 + 700 + 300);
  }

  @Test
  void anOpenWarpIsHeldBackFromItsFirstWarpStart() {
    LogGen.Log log = new LogGen.Log(0, 0)
        .event(ReplayLogEncoder.instruction(1234))
        .event(new byte[] {(byte) ReplayEventKind.CHAR_WRITE.code(), 0, 0, 0, 1, 0, 0, 0, 1});
    long idleFrom = log.position();
    log.event(new byte[] {(byte) WARP_START})
        .event(new byte[] {(byte) ReplayEventKind.CLOCK_VIRTUAL_RT.code(), 0, 0, 0, 0, 0, 0, 0, 9})
        .event(new byte[] {(byte) ReplayEventKind.CHECKPOINT_CLOCK_VIRTUAL_RT.code()})
        .event(new byte[] {(byte) WARP_START});
    GoLiveBoundary b = feed(log, 0, 0);
    assertThat(b.holdsBackOpenWarp()).isTrue();
    assertThat(b.end()).isEqualTo(idleFrom);
    assertThat(b.icount()).isEqualTo(1234);

    // The vCPU wakes: the warp is closed and everything counts again.
    log.event(new byte[] {(byte) WARP_ACCOUNT}).event(ReplayLogEncoder.instruction(10));
    GoLiveBoundary after = feed(log, 0, 0);
    assertThat(after.holdsBackOpenWarp()).isFalse();
    assertThat(after.end()).isEqualTo(log.position());
    assertThat(after.icount()).isEqualTo(1244);
  }

  /**
   * On a real recording of an idling Linux guest (thousands of warps), cut after every event:
   * the boundary is always an event boundary at or before the cut, and what it holds back never
   * contains guest execution (INSTRUCTION, INTERRUPT, EXCEPTION) nor a WARP_ACCOUNT: the claim that
   * leaving an open warp out loses no guest work, checked against QEMU's own output.
   */
  @Test
  void onARealIdleGuestLogTheHeldBackStretchHoldsNoGuestExecution() {
    byte[] data = LogGen.resource("linux-boot-blkreplay.bin.gz");
    List<Ev> events = Scans.whole(data, Scans.FILE).events();
    GoLiveBoundary b = new GoLiveBoundary(ReplayLogScanner.FILE_HEADER_SIZE, 0);
    int heldBack = 0;
    int firstHeld = 0;
    int warps = 0;
    int longestHeld = 0;
    for (int i = 0; i < events.size(); i++) {
      Ev e = events.get(i);
      b.onEvent(e.kind(), e.start(), e.end(), e.icount());
      warps += e.kind() == WARP_START ? 1 : 0;
      if (!b.holdsBackOpenWarp()) {
        assertThat(b.end()).isEqualTo(e.end());
        firstHeld = i + 1;
        continue;
      }
      heldBack++;
      assertThat(b.end()).isEqualTo(events.get(firstHeld).start());
      assertThat(events.get(firstHeld).kind()).isEqualTo(WARP_START);
      assertThat(b.icount()).isEqualTo(events.get(firstHeld).icount());
      assertThat(e.kind()).isNotIn(0, 1, 2, WARP_ACCOUNT);
      longestHeld = Math.max(longestHeld, i + 1 - firstHeld);
    }
    assertThat(warps).isGreaterThan(1000);
    assertThat(heldBack).isGreaterThan(1000);
    assertThat(longestHeld).as("events in the longest open warp").isBetween(1, 1000);
  }

  private static GoLiveBoundary feed(LogGen.Log log, long base, long icount) {
    GoLiveBoundary b = new GoLiveBoundary(base, icount);
    for (Ev e : log.events) {
      b.onEvent(e.kind(), e.start(), e.end(), e.icount());
    }
    return b;
  }
}
