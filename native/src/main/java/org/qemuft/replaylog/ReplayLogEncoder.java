package org.qemuft.replaylog;

import java.nio.ByteBuffer;

/**
 * Encodes the few replay-log pieces the controller writes itself, in QEMU 7.2's format
 * (big-endian, see docs/replay-log.md). Only bytes: where they go is the caller's business.
 */
public final class ReplayLogEncoder {
  /** Largest count one INSTRUCTION event may carry (QEMU keeps it in an int). */
  public static final int MAX_INSTRUCTION_COUNT = Integer.MAX_VALUE;

  /**
   * The go-live tail's shutdown cause: host-qmp-quit. With {@code -action shutdown=pause} any cause
   * pauses the VM (status {@code shutdown}); this one says in QEMU's SHUTDOWN event that the host,
   * not the guest, stopped it.
   */
  public static final ReplayEventKind GO_LIVE_SHUTDOWN = ReplayEventKind.SHUTDOWN_HOST_QMP_QUIT;
  /** Instructions per INSTRUCTION event of the default go-live tail. */
  public static final int GO_LIVE_INSTRUCTIONS_PER_EVENT = 100_000;
  /**
   * INSTRUCTION events in the default go-live tail: with {@link #GO_LIVE_INSTRUCTIONS_PER_EVENT},
   * 10 million instructions (10 ms of guest time at shift=0) for the stop to take effect. In
   * every measurement (docs/go-live.md) the guest executed none of them: the VM stopped exactly at
   * the boundary, 1-10 ms after the tail was written. They are a reserve: a replaying vCPU that
   * ran out of log would block reading it while holding the replay lock, and the stop would wait
   * for more log.
   */
  public static final int GO_LIVE_REPETITIONS = 100;

  private static final int INSTRUCTION_SIZE = 5;

  private ReplayLogEncoder() {}

  /** The 12-byte header of a log file: u32 REPLAY_VERSION, u64 reserved (zero). */
  public static byte[] fileHeader() {
    return ByteBuffer.allocate(ReplayLogScanner.FILE_HEADER_SIZE)
        .putInt(ReplayLogScanner.REPLAY_VERSION)
        .putLong(0)
        .array();
  }

  /** One INSTRUCTION event: kind 0, u32 count. */
  public static byte[] instruction(int count) {
    checkCount(count);
    return ByteBuffer.allocate(INSTRUCTION_SIZE).put((byte) 0).putInt(count).array();
  }

  /**
   * The default go-live tail: {@link #GO_LIVE_SHUTDOWN}, then {@link #GO_LIVE_REPETITIONS}
   * INSTRUCTION events of {@link #GO_LIVE_INSTRUCTIONS_PER_EVENT}. Append it at a {@link
   * GoLiveBoundary}, not merely at any whole-event boundary.
   */
  public static byte[] goLiveTail() {
    return goLiveTail(GO_LIVE_SHUTDOWN, GO_LIVE_INSTRUCTIONS_PER_EVENT, GO_LIVE_REPETITIONS);
  }

  /**
   * The go-live tail: appended at a whole-event boundary of what a replaying QEMU has been fed, it
   * makes that QEMU stop cleanly so it can be snapshotted and continued in record mode.
   *
   * <p>It is one SHUTDOWN event with the given cause (QEMU raises the shutdown request as soon as
   * replay reaches it; with {@code -action shutdown=pause} the VM pauses), then {@code
   * repetitions} INSTRUCTION events of {@code instructionsPerEvent} each. The instructions keep the
   * vCPU supplied while the stop takes effect: a replaying vCPU that runs out of log blocks on the
   * read while holding the replay lock, and the stop never happens. The sequence that worked here
   * (shared notes, "Going live") was cause host-qmp-quit and INSTRUCTION events of 100000; measured
   * since (docs/go-live.md), the VM stops before executing any of them. The total (count ×
   * repetitions) bounds how far the guest could run past the boundary if the stop were slow;
   * smaller counts in more events also give the stop more wall time per instruction (each event
   * costs the replaying QEMU a hand-off between its threads). The boundary matters too: see {@link
   * GoLiveBoundary}.
   *
   * @param shutdown a SHUTDOWN kind, e.g. {@link ReplayEventKind#SHUTDOWN_HOST_QMP_QUIT}
   * @param instructionsPerEvent 1..{@link #MAX_INSTRUCTION_COUNT}
   * @param repetitions 1..1048576
   */
  public static byte[] goLiveTail(
      ReplayEventKind shutdown, int instructionsPerEvent, int repetitions) {
    if (!shutdown.isShutdown()) {
      throw new IllegalArgumentException(
          "the go-live tail starts with a SHUTDOWN event, not " + shutdown);
    }
    checkCount(instructionsPerEvent);
    if (repetitions < 1 || repetitions > 1 << 20) {
      throw new IllegalArgumentException(
          "go-live tail repetitions must be 1..1048576, got " + repetitions);
    }
    ByteBuffer out = ByteBuffer.allocate(1 + INSTRUCTION_SIZE * repetitions);
    out.put((byte) shutdown.code());
    for (int i = 0; i < repetitions; i++) {
      out.put((byte) 0).putInt(instructionsPerEvent);
    }
    return out.array();
  }

  private static void checkCount(int count) {
    if (count < 1) {
      throw new IllegalArgumentException(
          "an INSTRUCTION event carries 1.." + MAX_INSTRUCTION_COUNT + " instructions, got "
              + count + " (QEMU never replays a count of 0 or above INT_MAX)");
    }
  }
}
